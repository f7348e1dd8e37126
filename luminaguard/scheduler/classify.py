"""Run-time classification: the plan's decisions for fixed actions, fresh ones otherwise."""

from __future__ import annotations

from luminaguard.compiler.plan import Plan, PlannedStep
from luminaguard.policy.action import Action, Decision
from luminaguard.policy.engine import PolicyEngine


class Classifier:
    """Decisions at run time: the plan's for fixed actions, fresh ones for run-time actions."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.engines = {
            name: PolicyEngine(name, policy.spec, policy.rule_sources)
            for name, policy in plan.policies.items()
        }

    def decide(self, step: PlannedStep, action: Action) -> Decision:
        """Classify ``action``; a planned decision stands only for the exact planned action."""
        if step.decision is not None and action == step.action:
            return step.decision
        policy = self.plan.agents[step.agent].spec.policy
        return self.engines[policy].decide(action)

    def approval_timeout(self, decision: Decision) -> float:
        """Seconds an approval request for ``decision`` stays open."""
        spec = self.plan.policies[decision.policy].spec
        rule = next((r for r in spec.rules if r.id == decision.rule), None)
        return rule.timeout if rule and rule.timeout else spec.approval.timeout

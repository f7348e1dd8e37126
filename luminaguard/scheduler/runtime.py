"""Run-time rendering and classification of a step, against its actual arguments."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from luminaguard.compiler.plan import Plan, PlannedAgent, PlannedStep
from luminaguard.config.models import SecretRef
from luminaguard.config.render import (
    Namespace,
    evaluate_expression,
    render_command_text,
    render_text,
)
from luminaguard.errors import LuminaGuardError
from luminaguard.hypervisor.base import Mount, SandboxSpec
from luminaguard.hypervisor.guest_image import find_recipe
from luminaguard.policy.action import Action, Decision
from luminaguard.policy.engine import PolicyEngine
from luminaguard.scheduler.store import StepRecord


class StepError(LuminaGuardError):
    """A step cannot run (a missing secret, a template that fails at run time)."""


def template_context(plan: Plan, steps: Mapping[str, StepRecord]) -> dict[str, Any]:
    """``params`` and the outputs of every step that succeeded so far."""
    outputs = {
        step_id: Namespace(
            f"steps.{step_id}", {"outputs": Namespace(f"steps.{step_id}.outputs", record.outputs)}
        )
        for step_id, record in steps.items()
        if record.state == "succeeded"
    }
    return {"params": Namespace("params", plan.params), "steps": Namespace("steps", outputs)}


def _render(value: JsonValue, context: Mapping[str, Any]) -> JsonValue:
    if isinstance(value, str):
        return render_text(value, context)  # type: ignore[no-any-return]
    if isinstance(value, list):
        return [_render(item, context) for item in value]
    if isinstance(value, dict):
        return {key: _render(item, context) for key, item in value.items()}
    return value


def actual_action(step: PlannedStep, context: Mapping[str, Any]) -> Action:
    """The step's action with run-time values filled in (unchanged if it had none)."""
    if not step.runtime:
        return step.action
    try:
        if step.action.kind == "run":
            return step.action.model_copy(
                update={"command": render_command_text(step.action.command or "", context)}
            )
        return step.action.model_copy(update={"args": _render(step.action.args, context)})
    except Exception as exc:  # a template failing at run time fails the step, not the run
        raise StepError(f"cannot render arguments: {exc}") from exc


def should_run(step: PlannedStep, context: Mapping[str, Any]) -> bool:
    """The value of the step's ``when`` expression (True without one)."""
    if step.when is None:
        return True
    try:
        return bool(evaluate_expression(step.when, context))
    except Exception as exc:
        raise StepError(f"cannot evaluate when: {exc}") from exc


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


def secret_references(agent: PlannedAgent, environ: Mapping[str, str]) -> dict[str, str]:
    """The agent's secret references that are set: environment variable -> value."""
    refs = [v for v in agent.spec.env.values() if isinstance(v, SecretRef)]
    for server in agent.spec.mcp_servers.values():
        refs += [
            v for v in (*server.env.values(), *server.headers.values()) if isinstance(v, SecretRef)
        ]
    return {ref.from_env: environ[ref.from_env] for ref in refs if ref.from_env in environ}


def run_secrets(plan: Plan, environ: Mapping[str, str]) -> dict[str, str]:
    """Every secret of the plan's agents that is set: environment variable -> value."""
    return {
        name: value
        for agent in plan.agents.values()
        for name, value in secret_references(agent, environ).items()
    }


def resolve(
    values: Mapping[str, str | SecretRef], environ: Mapping[str, str], what: str
) -> dict[str, str]:
    """Plain values as written; secret references looked up in the runner's environment."""
    resolved: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, SecretRef):
            if value.from_env not in environ:
                missing = f"secret {value.from_env!r} for {what} {key}"
                raise StepError(f"{missing} is not set in the runner's environment")
            resolved[key] = environ[value.from_env]
        else:
            resolved[key] = value
    return resolved


def mounts_of(agent: PlannedAgent) -> tuple[Mount, ...]:
    """The agent's mounts with sources resolved against the folder of its file."""
    base = Path(agent.base_dir)
    return tuple(
        Mount((base / m.source).resolve(), m.target, m.read_only) for m in agent.spec.mounts
    )


def sandbox_spec(
    name: str, agent: PlannedAgent, workdir: Path, environ: Mapping[str, str]
) -> SandboxSpec:
    """The sandbox of one agent: work folder, mounts, environment with secrets resolved."""
    limits = agent.spec.limits
    env = resolve(agent.spec.env, environ, "env")
    pool, image = agent.pool, agent.image
    recipe = find_recipe(image.rootfs, [Path(agent.base_dir)]) if image else None
    spec = SandboxSpec(
        name=name, workdir=workdir, mounts=mounts_of(agent), env=env,
        memory_mib=limits.memory_mib, cpu_seconds=limits.cpu_seconds, pids=limits.pids,
        cpus=limits.cpus, disk_mib=limits.disk_mib,
        recipe=recipe,
        pool=agent.spec.pool, warm=pool.warm if pool else 0, pool_max=pool.max if pool else 8,
    )  # fmt: skip
    if image is None:
        return spec
    return replace(
        spec, vm_memory_mib=image.memory_mib, vcpus=image.vcpus,
        network=image.network != "none", egress=tuple(image.egress),
    )  # fmt: skip


def absolute_agent(agent: PlannedAgent) -> PlannedAgent:
    """The agent with its ``base_dir`` made absolute."""
    return agent.model_copy(update={"base_dir": str(Path(agent.base_dir).resolve())})


def absolute_plan(plan: Plan) -> Plan:
    """The plan with each agent's ``base_dir`` made absolute, so runs resume from anywhere."""
    agents = {name: absolute_agent(agent) for name, agent in plan.agents.items()}
    return plan.model_copy(update={"agents": agents})


def environment() -> Mapping[str, str]:
    """The runner's environment, where secret references are looked up."""
    return os.environ

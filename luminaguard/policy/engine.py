"""``PolicyEngine.decide``: ordered rules, the first that matches decides, else the default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from luminaguard.config.models.policy import PolicySpec, Rule
from luminaguard.policy.action import Action, Decision
from luminaguard.policy.fusion import Deciding, IndexedRun, StringTest, fuse, string_test
from luminaguard.policy.matchers import Predicate, Prefilter, detail_predicates
from luminaguard.policy.rule_index import RuleIndex

_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its conditions compiled and its decision made in advance."""

    rule: Rule
    prefilter: Prefilter
    checks: tuple[Predicate, ...]
    decision: Decision
    string_test: StringTest | None

    def matches(self, action: Action) -> bool:
        """Whether every condition of the rule holds for ``action``."""
        return self.prefilter.admits(action.kind, action.server, action.tool) and all(
            check(action) for check in self.checks
        )

    def first(self, action: Action) -> Decision | None:
        """The rule's decision if its conditions beyond kind, server and tool hold."""
        for check in self.checks:
            if not check(action):
                return None
        return self.decision


class PolicyEngine:
    """Classifies actions Green or Red with one policy's rules; first match decides."""

    def __init__(
        self,
        name: str,
        spec: PolicySpec,
        sources: Sequence[str | None] = (),
        default_source: str | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.rules = [
            CompiledRule(
                rule,
                Prefilter(rule.match),
                tuple(detail_predicates(rule.match)),
                Decision(
                    risk=rule.risk,
                    policy=name,
                    rule=rule.id,
                    reason=rule.reason,
                    source=sources[i] if i < len(sources) else None,
                ),
                string_test(rule.match),
            )
            for i, rule in enumerate(spec.rules)
        ]
        self.default = Decision(
            risk=spec.default,
            policy=name,
            rule=None,
            reason=spec.default_reason,
            source=default_source,
        )
        self._index = RuleIndex([rule.match for rule in spec.rules])
        self._steps: dict[tuple[str, str | None, str | None], list[Deciding]] = {}
        self._runs: dict[tuple[int, ...], IndexedRun] = {}
        self._fused: dict[tuple[int, ...], list[Deciding]] = {}

    def candidates(self, action: Action) -> list[CompiledRule]:
        """Rules whose kind, server and tool admit the action, in order."""
        key = (action.kind, action.server, action.tool)
        exact, rules = self._index.exact, self.rules
        return [
            rules[i]
            for i in self._index.lookup(*key)
            if i in exact or rules[i].prefilter.admits(*key)
        ]

    def steps(self, action: Action) -> list[Deciding]:
        """The candidate rules, runs of similar ones fused (cached per kind, server and tool)."""
        key = (action.kind, action.server, action.tool)
        found = self._steps.get(key)
        if found is None:
            if len(self._steps) >= _CACHE_LIMIT:
                self._steps.clear()
            candidates = self.candidates(action)
            shared = tuple(id(rule) for rule in candidates)  # tools with the same candidates
            found = self._fused.get(shared)
            if found is None:
                found = self._fused[shared] = fuse(candidates, self._runs)
            self._steps[key] = found
        return found

    def decide(self, action: Action) -> Decision:
        """The decision of the first rule that matches ``action``, else the default."""
        for step in self.steps(action):
            decision = step.first(action)
            if decision is not None:
                return decision
        return self.default

"""``PolicyEngine.decide``: ordered rules, the first that matches decides, else the default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from luminaguard.config.models.policy import PolicySpec, Rule
from luminaguard.policy.action import Action, Decision
from luminaguard.policy.matchers import Predicate, Prefilter, detail_predicates

_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its conditions compiled and its decision made in advance."""

    rule: Rule
    prefilter: Prefilter
    checks: tuple[Predicate, ...]
    decision: Decision

    def matches(self, action: Action) -> bool:
        """Whether every condition of the rule holds for ``action``."""
        return self.prefilter.admits(action.kind, action.server, action.tool) and all(
            check(action) for check in self.checks
        )


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
        self._candidates: dict[tuple[str, str | None, str | None], list[CompiledRule]] = {}

    def candidates(self, action: Action) -> list[CompiledRule]:
        """Rules whose kind, server and tool admit the action, in order (cached per tool)."""
        key = (action.kind, action.server, action.tool)
        found = self._candidates.get(key)
        if found is None:
            if len(self._candidates) >= _CACHE_LIMIT:
                self._candidates.clear()
            found = [r for r in self.rules if r.prefilter.admits(*key)]
            self._candidates[key] = found
        return found

    def decide(self, action: Action) -> Decision:
        """The decision of the first rule that matches ``action``, else the default."""
        for compiled in self.candidates(action):
            for check in compiled.checks:
                if not check(action):
                    break
            else:
                return compiled.decision
        return self.default

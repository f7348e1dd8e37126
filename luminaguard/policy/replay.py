"""``policy replay``: past audited actions through changed policies, before they go live.

Every ``decision`` record of the audit log holds the exact action (arguments as
audited, secrets already redacted; annotations as locked) and the decision it got.
Each distinct action (run, step, content hash) is decided again by the policy of
the same name, or by the one named with ``--policy``; the decisions whose risk
changes are listed, Red→Green (loosening, the dangerous direction) first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from luminaguard.policy.action import Action, Decision
from luminaguard.policy.engine import PolicyEngine

#: A rule id that is not a policy's: the runner's own "tool changed since lock" decision.
RUNTIME_RULES = frozenset({"tool-changed-since-lock"})


@dataclass(frozen=True)
class Replayed:
    """One audited action, the decision it had and the one it would have now."""

    run_id: str
    step_id: str
    action: Action
    before_risk: str
    before_rule: str | None
    after: Decision

    @property
    def loosened(self) -> bool:
        """Red then, Green now."""
        return self.before_risk == "red" and self.after.risk == "green"

    @property
    def tightened(self) -> bool:
        """Green then, Red now."""
        return self.before_risk == "green" and self.after.risk == "red"


@dataclass
class ReplayReport:
    """The replayed actions by outcome, and those that could not be replayed."""

    loosened: list[Replayed] = field(default_factory=list)
    tightened: list[Replayed] = field(default_factory=list)
    unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # why -> how many

    @property
    def actions(self) -> int:
        """How many distinct audited actions were looked at."""
        changed = len(self.loosened) + len(self.tightened)
        return changed + self.unchanged + sum(self.skipped.values())

    def skip(self, why: str) -> None:
        """Count one action that could not be replayed, by reason."""
        self.skipped[why] = self.skipped.get(why, 0) + 1


@dataclass(frozen=True)
class Audited:
    """What replay needs of one audit record."""

    run_id: str
    step_id: str | None
    data: dict[str, Any]


def _distinct(records: Iterable[Audited]) -> Iterable[Audited]:
    seen: set[tuple[str, str | None, object]] = set()
    for record in records:
        key = (record.run_id, record.step_id, record.data.get("action_hash"))
        if key not in seen:
            seen.add(key)
            yield record


def replay(
    records: Iterable[Audited],
    engines: Callable[[str], PolicyEngine | None],
    policy: str | None = None,
) -> ReplayReport:
    """Decide every distinct audited action again; ``policy`` overrides the recorded name."""
    report = ReplayReport()
    for record in _distinct(records):
        data = record.data
        if data.get("rule") in RUNTIME_RULES:
            report.skip("decided by lock drift at run time, not by a policy rule")
            continue
        name = policy or str(data.get("policy"))
        engine = engines(name)
        if engine is None:
            report.skip(f"policy {name!r} not found in the paths given")
            continue
        action = Action.model_validate(data["action"])
        after = engine.decide(action)
        found = Replayed(
            record.run_id, record.step_id or "", action, data["risk"], data.get("rule"), after
        )
        if found.loosened:
            report.loosened.append(found)
        elif found.tightened:
            report.tightened.append(found)
        else:
            report.unchanged += 1
    return report

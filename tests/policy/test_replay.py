"""``replay``: distinct actions, skipped records, and the direction of each change."""

from __future__ import annotations

from typing import Any

from luminaguard.policy import Action
from luminaguard.policy.replay import Audited, replay
from tests.policy.test_properties import build


def record(step: str, command: str, risk: str, rule: str | None = None, **extra: Any) -> Audited:
    action = Action(kind="run", command=command)
    data = {"action": action.model_dump(mode="json"), "action_hash": action.content_hash(),
            "risk": risk, "policy": "p", "rule": rule, **extra}  # fmt: skip
    return Audited("r", step, data)


def test_each_distinct_action_is_replayed_once_and_drift_is_skipped() -> None:
    engine = build([({"kind": "run", "command": {"glob": "ls *"}}, "green")])
    records = [
        record("a", "rm -rf /", "red"),
        record("a", "rm -rf /", "red"),  # decided again on resume: the same action
        record("b", "ls /work", "red"),
        record("c", "ls /tmp", "green"),
        record("d", "ls /x", "red", rule="tool-changed-since-lock"),
    ]
    report = replay(records, {"p": engine}.get)
    assert [change.step_id for change in report.loosened] == ["b"]
    assert report.tightened == [] and report.unchanged == 2
    assert report.skipped == {"decided by lock drift at run time, not by a policy rule": 1}
    assert report.actions == 4

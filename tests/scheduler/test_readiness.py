"""The run loop looks at a step again only when one of its needs changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from luminaguard.scheduler.readiness import Readiness


@dataclass
class Step:
    id: str
    needs: list[str] = field(default_factory=list)


@dataclass
class Record:
    state: str = "pending"


@dataclass
class Plan:
    steps: list[Step]


def readiness(steps: list[Step], **states: str) -> Readiness:
    records = {step.id: Record(states.get(step.id, "pending")) for step in steps}
    return Readiness(Plan(steps), records)  # type: ignore[arg-type]


def ids(found: Any) -> list[str]:
    return [step.id for step in found]


def test_a_chain_looks_at_one_step_per_change() -> None:
    chain = [Step(f"s{i}", [f"s{i - 1}"] if i else []) for i in range(1000)]
    ready = readiness(chain)
    assert ids(ready.examine()) == [f"s{i}" for i in range(1000)]  # the first look: all
    ready.settled("s0")
    ready.changed("s0")
    assert ids(ready.examine()) == ["s1"]
    assert ids(ready.examine()) == []


def test_skips_cascade_within_one_look_in_plan_order() -> None:
    steps = [Step("a"), Step("b", ["a"]), Step("d", ["a"]), Step("c", ["b"])]
    ready = readiness(steps, a="failed")
    ready.dirty.clear()
    ready.changed("a")
    seen = []
    for step in ready.examine():
        seen.append(step.id)
        ready.settled(step.id)  # as the loop does when it skips a step
        ready.changed(step.id)
    assert seen == ["b", "d", "c"]  # b before d (plan order), c once b changed


def test_a_step_deferred_for_a_slot_is_looked_at_again() -> None:
    ready = readiness([Step("a"), Step("b")])
    for step in ready.examine():
        if step.id == "b":
            ready.defer("b")
        else:
            ready.settled("a")
    assert ids(ready.examine()) == ["b"]


def test_steps_not_pending_are_never_looked_at() -> None:
    ready = readiness([Step("a"), Step("b", ["a"])], a="succeeded")
    assert ids(ready.examine()) == ["b"]

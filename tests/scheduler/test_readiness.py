"""The run loop's readiness: each step ending touches only the steps that need it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from luminaguard.scheduler.readiness import Readiness
from luminaguard.scheduler.states import StepState


@dataclass
class Step:
    id: str
    needs: list[str] = field(default_factory=list)


@dataclass
class Record:
    state: StepState = StepState.PENDING


@dataclass
class Plan:
    steps: list[Step]


def readiness(steps: list[Step], **states: StepState) -> Readiness:
    records = {step.id: Record(states.get(step.id, StepState.PENDING)) for step in steps}
    return Readiness(Plan(steps), records)  # type: ignore[arg-type]


def start_all(ready: Readiness) -> list[str]:
    started = []
    while (step := ready.next_ready()) is not None:
        started.append(step.id)
        ready.settled(step.id)
    return started


def first(ready: Readiness) -> str | None:
    step = ready.next_ready()
    return None if step is None else step.id


def ids(found: Any) -> list[str]:
    return [step.id for step in found]


def succeed(ready: Readiness, step_id: str) -> None:
    ready.changed(step_id, StepState.SUCCEEDED)


def test_a_chain_offers_one_step_per_change() -> None:
    chain = [Step(f"s{i}", [f"s{i - 1}"] if i else []) for i in range(1000)]
    ready = readiness(chain)
    for i in range(1000):
        assert start_all(ready) == [f"s{i}"]
        succeed(ready, f"s{i}")
    assert start_all(ready) == []


def test_checks_grow_with_the_edges_not_their_square() -> None:
    for size in (100, 1000):
        # a chain, a wide fan-out and a fan-in: each need is looked at once at the start
        # and once when it ends, whatever the size
        chain = [Step(f"s{i}", [f"s{i - 1}"] if i else []) for i in range(size)]
        fan = [Step("root"), *(Step(f"s{i}", ["root"]) for i in range(size - 2))]
        fan.append(Step("last", [f"s{i}" for i in range(size - 2)]))
        for steps in (chain, fan):
            ready = readiness(steps)
            edges = sum(len(step.needs) for step in steps)
            while started := start_all(ready):
                for step_id in started:
                    succeed(ready, step_id)
            assert ready.pending == set()
            assert ready.checks == 2 * edges


def test_a_step_waits_for_all_its_needs() -> None:
    ready = readiness([Step("a"), Step("b"), Step("c", ["a", "b"])])
    assert start_all(ready) == ["a", "b"]
    succeed(ready, "a")
    assert start_all(ready) == []
    succeed(ready, "b")
    assert start_all(ready) == ["c"]


def test_a_ready_step_stays_offered_until_started() -> None:
    ready = readiness([Step("a"), Step("b")])
    assert first(ready) == "a"
    assert first(ready) == "a"  # no free slot: offered again later
    ready.settled("a")
    assert first(ready) == "b"


def test_skips_cascade_within_one_look_in_plan_order() -> None:
    steps = [Step("a"), Step("b", ["a"]), Step("d", ["a"]), Step("c", ["b"])]
    ready = readiness(steps, a=StepState.FAILED)
    seen = []
    for step in ready.to_skip():
        seen.append(step.id)
        ready.settled(step.id)  # as the loop does when it skips a step
        ready.changed(step.id, StepState.SKIPPED)
    assert seen == ["b", "d", "c"]  # b before d (plan order), c once b changed
    assert start_all(ready) == []


def test_a_need_failing_later_dooms_a_step_others_of_whose_needs_succeeded() -> None:
    ready = readiness([Step("a"), Step("b"), Step("c", ["a", "b"])])
    start_all(ready)
    succeed(ready, "a")
    ready.changed("b", StepState.FAILED)
    assert ids(ready.to_skip()) == ["c"]
    assert start_all(ready) == []


def test_a_step_waiting_for_a_person_holds_its_dependents() -> None:
    ready = readiness([Step("a"), Step("b", ["a"])])
    start_all(ready)
    ready.changed("a", StepState.AWAITING_APPROVAL)
    assert start_all(ready) == []
    assert ids(ready.to_skip()) == []


def test_steps_not_pending_are_never_offered() -> None:
    ready = readiness([Step("a"), Step("b", ["a"])], a=StepState.SUCCEEDED)
    assert start_all(ready) == ["b"]

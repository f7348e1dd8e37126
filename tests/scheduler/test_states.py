"""The state tables, and the store refusing every move they do not allow.

A refused move raises ``StateError`` naming the run, the step, from and to, and writes
nothing: not the row, not an audit record.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from luminaguard.compiler import compile_paths
from luminaguard.errors import LuminaGuardError
from luminaguard.scheduler.outcomes import run_state
from luminaguard.scheduler.states import (
    APPROVAL_MOVES,
    RUN_MOVES,
    STEP_MOVES,
    ApprovalState,
    RunState,
    StateError,
    StepState,
)
from luminaguard.scheduler.store import RunStore, StepRecord
from tests.conftest import ROOT

WORKLOAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: all, match: {kind: run}, risk: green, reason: test}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec: {policy: p}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: s, agent: a, run: "true"}
"""

S = StepState
ALLOWED = sorted((a, b) for a, nexts in STEP_MOVES.items() for b in nexts)
FORBIDDEN = sorted(p for p in itertools.product(StepState, StepState) if p not in ALLOWED)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    path = tmp_path / "w.yaml"
    path.write_text(WORKLOAD)
    _, [plan] = compile_paths([str(path)])
    store = RunStore(tmp_path / "state")
    store.create_run("r", plan, "sandbox")
    yield store
    store.close()


def put(store: RunStore, state: str) -> None:
    """Put step ``s`` in ``state`` in runs.db, as an earlier move would have."""
    store.db.execute("UPDATE steps SET state = ?, error = 'before' WHERE step_id = 's'", (state,))


def snapshot(store: RunStore) -> tuple[Any, ...]:
    """Everything a refused move must leave as it was."""
    tables = ("runs", "steps", "attempts", "approvals", "audit")
    return tuple(store.db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables)


def ids(pair: tuple[StepState, StepState]) -> str:
    return f"{pair[0]}->{pair[1]}"


# --- the tables -----------------------------------------------------------------------------
def test_the_stored_strings_are_those_of_existing_runs() -> None:
    # runs.db files and JSON output of earlier versions hold these: they never change
    assert [s.value for s in StepState] == [
        "pending", "running", "awaiting_approval", "succeeded", "failed", "denied", "skipped",
        "unknown",
    ]  # fmt: skip
    assert [s.value for s in RunState] == ["running", "succeeded", "failed", "halted"]
    assert [s.value for s in ApprovalState] == [
        "pending", "approved", "denied", "expired", "superseded"
    ]  # fmt: skip


@pytest.mark.parametrize("table", [STEP_MOVES, RUN_MOVES, APPROVAL_MOVES])
def test_every_state_has_a_row(table: Any) -> None:
    kind = type(next(iter(table)))
    assert set(table) == set(kind)


def test_final_states_are_those_nothing_leaves() -> None:
    assert {s for s in StepState if s.is_final} == {S.SUCCEEDED, S.FAILED, S.DENIED, S.SKIPPED}
    assert {s for s in ApprovalState if s.is_final} == set(ApprovalState) - {ApprovalState.PENDING}


def test_what_blocks_dependents_fails_runs_and_needs_a_person() -> None:
    assert {s for s in StepState if s.blocks_dependents} == {S.FAILED, S.DENIED, S.SKIPPED}
    assert {s for s in StepState if s.fails_run} == {S.FAILED, S.DENIED}
    assert {s for s in StepState if s.needs_person} == {S.AWAITING_APPROVAL, S.UNKNOWN}
    assert all(s.is_final for s in StepState if s.blocks_dependents)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([S.SUCCEEDED, S.SKIPPED], RunState.SUCCEEDED),
        ([S.SUCCEEDED, S.DENIED, S.SKIPPED], RunState.FAILED),
        ([S.FAILED, S.AWAITING_APPROVAL], RunState.HALTED),
        ([S.SUCCEEDED, S.UNKNOWN, S.PENDING], RunState.HALTED),
        ([S.SUCCEEDED, S.PENDING], RunState.HALTED),
    ],
)
def test_the_run_state_follows_from_the_step_states(
    states: list[StepState], expected: RunState
) -> None:
    steps = {f"s{i}": StepRecord(f"s{i}", s, 0, None, {}, None) for i, s in enumerate(states)}
    assert run_state(steps) is expected


# --- the store: steps -------------------------------------------------------------------------
@pytest.mark.parametrize("move", ALLOWED, ids=ids)
def test_every_allowed_step_move_is_recorded(
    store: RunStore, move: tuple[StepState, StepState]
) -> None:
    before, after = move
    put(store, before)
    store.set_step("r", "s", after, "test.move", {})
    assert store.step("r", "s").state is after
    last = store.audit.records("r", "s")[-1]
    assert (last.event, last.data) == ("test.move", {"state": after.value})


@pytest.mark.parametrize("move", FORBIDDEN, ids=ids)
def test_every_forbidden_step_move_is_refused_and_changes_nothing(
    store: RunStore, move: tuple[StepState, StepState]
) -> None:
    before, after = move
    put(store, before)
    was = snapshot(store)
    with pytest.raises(StateError, match=f"^run 'r': step s cannot move from {before} to {after}$"):
        store.set_step("r", "s", after, "test.move", {}, "why")
    assert snapshot(store) == was
    assert store.audit.verify() == []


def test_a_finished_step_does_not_start_again(store: RunStore) -> None:
    put(store, S.SUCCEEDED)
    was = snapshot(store)
    with store.lease("r") as lease, pytest.raises(StateError, match="from succeeded to running"):
        store.begin_attempt("r", "s", "sha256:x", {}, token=lease.token)
    assert snapshot(store) == was


def test_only_a_running_step_finishes_an_attempt(store: RunStore) -> None:
    was = snapshot(store)  # pending
    with pytest.raises(StateError, match="from pending to succeeded"):
        store.finish_attempt("r", "s", 1, S.SUCCEEDED, {"stdout": "x"}, None)
    assert snapshot(store) == was


def test_a_step_that_ended_does_not_halt_for_approval(store: RunStore) -> None:
    put(store, S.DENIED)
    was = snapshot(store)
    with pytest.raises(StateError, match="from denied to awaiting_approval"):
        store.request_approval("r", "s", "sha256:x", {"action": "true"}, 0.0)
    assert snapshot(store) == was  # no request row either


def test_the_moves_of_one_attempt_are_accepted(store: RunStore) -> None:
    with store.lease("r") as lease:
        store.begin_attempt("r", "s", "sha256:x", {}, token=lease.token)
        store.finish_attempt("r", "s", 1, S.PENDING, {}, "exit 1")  # tried again
        store.begin_attempt("r", "s", "sha256:x", {}, token=lease.token)
        store.finish_attempt("r", "s", 2, S.SUCCEEDED, {"exit_code": 0}, None)
    assert store.step("r", "s").state is S.SUCCEEDED
    assert store.step("r", "s").attempts == 2


def test_a_step_with_no_such_state_is_named(store: RunStore) -> None:
    put(store, "bogus")
    with pytest.raises(StateError, match="run 'r': step s: 'bogus' is not a StepState"):
        store.steps("r")


def test_a_state_error_is_reported_as_a_luminaguard_error() -> None:
    assert issubclass(StateError, LuminaGuardError)


# --- the store: approvals and runs ------------------------------------------------------------
def halted(store: RunStore) -> None:
    store.request_approval("r", "s", "sha256:x", {"action": "true"}, 0.0)


def test_a_request_is_decided_once(store: RunStore) -> None:
    halted(store)
    [request] = store.approvals(ApprovalState.PENDING)
    store.decide_approval(request, ApprovalState.APPROVED, "alice", None)
    was = snapshot(store)
    with pytest.raises(StateError, match="cannot move from approved to denied"):
        store.decide_approval(request, ApprovalState.DENIED, "bob", None)  # read before alice
    assert snapshot(store) == was


def test_a_denial_moves_the_request_and_the_step_together(store: RunStore) -> None:
    halted(store)
    [request] = store.approvals(ApprovalState.PENDING)
    store.deny_step(request, "bob", "no", "denied by bob")
    assert store.step("r", "s").state is S.DENIED
    assert store.approvals()[0].state is ApprovalState.DENIED
    events = [r.event for r in store.audit.records("r", "s")]
    assert events[-2:] == ["approval.denied", "step.denied"]


def test_a_denial_the_step_cannot_take_records_nothing(store: RunStore) -> None:
    halted(store)
    [request] = store.approvals(ApprovalState.PENDING)
    put(store, S.RUNNING)
    was = snapshot(store)
    with pytest.raises(StateError, match="from running to denied"):
        store.deny_step(request, "bob", "no", "denied by bob")
    assert snapshot(store) == was  # the request is still pending


@pytest.mark.parametrize("before", list(RunState))
def test_a_run_is_driven_again_from_any_state(store: RunStore, before: RunState) -> None:
    store.db.execute("UPDATE runs SET state = ?", (before,))
    store.set_run_state("r", RunState.RUNNING)
    assert store.run("r").state is RunState.RUNNING


def test_a_run_ends_only_from_running(store: RunStore) -> None:
    store.set_run_state("r", RunState.HALTED)
    was = snapshot(store)
    with pytest.raises(StateError, match="run 'r' cannot move from halted to succeeded"):
        store.set_run_state("r", RunState.SUCCEEDED)
    assert snapshot(store) == was


def test_the_documented_lifecycle_is_the_table() -> None:
    """docs/architecture.md draws exactly the moves ``STEP_MOVES`` allows."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    diagram = text.split("```mermaid", 1)[1].split("```", 1)[0]
    drawn = {
        (StepState(a), StepState(b))
        for a, b in re.findall(r"^\s*(\w+) --> (\w+)", diagram, re.M)
        if "[*]" not in (a, b)
    }
    allowed = {(a, b) for a, moves in STEP_MOVES.items() for b in moves}
    assert drawn == allowed

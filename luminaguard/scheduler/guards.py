"""The moves ``RunStore`` makes, checked against the state tables inside its transaction.

Each check reads the state as it is now, inside the write transaction that would move
it, so two processes cannot both move one state (an approval decided twice, a step
denied while the runner finishes it). A refused move raises ``StateError`` naming the
run, what moves, and from and to; the transaction then writes nothing.
"""

from __future__ import annotations

import sqlite3

from luminaguard.scheduler.states import ApprovalState, RunState, StateError, StepState


def step_state(db: sqlite3.Connection, run_id: str, step_id: str) -> StepState:
    """The step's state as stored (``StateError`` if there is no such step)."""
    row = db.execute(
        "SELECT state FROM steps WHERE run_id = ? AND step_id = ?", (run_id, step_id)
    ).fetchone()
    if row is None:
        raise StateError(f"run {run_id!r} has no step {step_id!r}")
    return stored_step(run_id, step_id, row[0])


def stored_step(run_id: str, step_id: str, value: str) -> StepState:
    """A step state read from runs.db (``StateError``, naming the step, if it is none)."""
    try:
        return StepState.stored(value)
    except StateError as exc:
        raise StateError(f"run {run_id!r}: step {step_id}: {exc} in runs.db") from None


def stored_run(run_id: str, value: str) -> RunState:
    """A run state read from runs.db (``StateError``, naming the run, if it is none)."""
    try:
        return RunState.stored(value)
    except StateError as exc:
        raise StateError(f"run {run_id!r}: {exc} in runs.db") from None


def stored_approval(run_id: str, step_id: str, value: str) -> ApprovalState:
    """An approval state read from runs.db (``StateError``, naming the step, if it is none)."""
    try:
        return ApprovalState.stored(value)
    except StateError as exc:
        raise StateError(f"run {run_id!r}: approval of {step_id}: {exc} in runs.db") from None


def step_move(db: sqlite3.Connection, run_id: str, step_id: str, to: StepState) -> None:
    """Refuse unless the step may move from its stored state to ``to``."""
    now = step_state(db, run_id, step_id)
    if not now.can_move_to(to):
        raise StateError(f"run {run_id!r}: step {step_id} cannot move from {now} to {to}")


def step_reopen(db: sqlite3.Connection, run_id: str, step_id: str) -> None:
    """Refuse unless a person's retry may move the step from its stored state to pending."""
    now = step_state(db, run_id, step_id)
    if not now.can_reopen_to(StepState.PENDING):
        raise StateError(f"run {run_id!r}: step {step_id} cannot be re-opened from {now}")


def run_move(db: sqlite3.Connection, run_id: str, to: RunState) -> None:
    """Refuse unless the run may move from its stored state to ``to``."""
    row = db.execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise StateError(f"no run {run_id!r}")
    now = stored_run(run_id, row[0])
    if not now.can_move_to(to):
        raise StateError(f"run {run_id!r} cannot move from {now} to {to}")


def approval_move(
    db: sqlite3.Connection, run_id: str, step_id: str, action_hash: str, to: ApprovalState
) -> None:
    """Refuse unless the request for this action may move from its stored state to ``to``."""
    row = db.execute(
        "SELECT state FROM approvals WHERE run_id = ? AND step_id = ? AND action_hash = ?",
        (run_id, step_id, action_hash),
    ).fetchone()
    if row is None:
        raise StateError(f"run {run_id!r}: step {step_id} has no approval request {action_hash}")
    now = stored_approval(run_id, step_id, row[0])
    if not now.can_move_to(to):
        raise StateError(
            f"run {run_id!r}: the approval request of step {step_id} cannot move from {now} to {to}"
        )

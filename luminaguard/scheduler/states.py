"""The states of steps, runs and approval requests, and the moves allowed between them.

Each machine is one enum and one table from a state to the states it may move to.
The values are the strings stored in runs.db, audited and printed. ``RunStore``
refuses a move the table does not allow (``StateError``), inside the transaction
that would make it.

Steps::

    pending ──> running ──> succeeded | failed
       │           ├──> pending              (an attempt failed and is retried;
       │           │                          resume after a crash: idempotent)
       │           └──> unknown             (resume after a crash: not idempotent)
       ├──> awaiting_approval ──> pending    (resume: the request is looked at again)
       │           └──> denied               (a person denies)
       └──> skipped | failed | denied        (before running: when, render, approval)
    unknown ──> pending | failed | succeeded (a person: re-run, decline, mark done)

A person re-opens a failed step (``luminaguard retry``), and with it the steps skipped
because of it: failed | skipped ──> pending. Those moves are in ``REOPEN_MOVES``, not
``STEP_MOVES``: only ``RunStore.reopen_steps`` makes them, never a runner by itself.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

from luminaguard.errors import LuminaGuardError

_E = TypeVar("_E", bound=enum.StrEnum)


class StateError(LuminaGuardError):
    """A move the state machine does not allow (or a stored state that is none of its)."""


class StepState(enum.StrEnum):
    """Where a step of a run stands."""

    PENDING = "pending"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"  # the runner died while the step ran; a person decides

    def can_move_to(self, state: StepState) -> bool:
        """Whether a step in this state may move to ``state``."""
        return state in STEP_MOVES[self]

    def can_reopen_to(self, state: StepState) -> bool:
        """Whether a person's retry may move a step in this state to ``state``."""
        return state in REOPEN_MOVES.get(self, frozenset())

    @property
    def is_final(self) -> bool:
        """Nothing moves the step on from here."""
        return not STEP_MOVES[self]

    @property
    def blocks_dependents(self) -> bool:
        """The steps that need this one are skipped."""
        return self in _BLOCKING

    @property
    def fails_run(self) -> bool:
        """The run fails (once nothing waits for a person)."""
        return self in _FAILING

    @property
    def needs_person(self) -> bool:
        """The run halts until a person decides about the step."""
        return self in _WAITING

    @classmethod
    def stored(cls, value: str) -> StepState:
        """The state a stored string names (``StateError`` if none)."""
        return _parse(cls, value)


class RunState(enum.StrEnum):
    """Where a run stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    HALTED = "halted"  # a person must decide about a step

    def can_move_to(self, state: RunState) -> bool:
        """Whether a run in this state may move to ``state``."""
        return state in RUN_MOVES[self]

    @classmethod
    def stored(cls, value: str) -> RunState:
        """The state a stored string names (``StateError`` if none)."""
        return _parse(cls, value)


class ApprovalState(enum.StrEnum):
    """Where an approval request for one exact action stands."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"  # the step's arguments changed: another action is asked for

    def can_move_to(self, state: ApprovalState) -> bool:
        """Whether a request in this state may move to ``state``."""
        return state in APPROVAL_MOVES[self]

    @property
    def is_final(self) -> bool:
        """The request is decided."""
        return not APPROVAL_MOVES[self]

    @classmethod
    def stored(cls, value: str) -> ApprovalState:
        """The state a stored string names (``StateError`` if none)."""
        return _parse(cls, value)


_S = StepState
STEP_MOVES: Mapping[StepState, frozenset[StepState]] = {
    _S.PENDING: frozenset({_S.RUNNING, _S.AWAITING_APPROVAL, _S.SKIPPED, _S.FAILED, _S.DENIED}),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.PENDING, _S.UNKNOWN}),
    _S.AWAITING_APPROVAL: frozenset({_S.PENDING, _S.DENIED}),
    _S.UNKNOWN: frozenset({_S.PENDING, _S.FAILED, _S.SUCCEEDED}),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset(),
    _S.DENIED: frozenset(),
    _S.SKIPPED: frozenset(),
}
# only a person's retry (RunStore.reopen_steps): a failed step and those it skipped
REOPEN_MOVES: Mapping[StepState, frozenset[StepState]] = {
    _S.FAILED: frozenset({_S.PENDING}),
    _S.SKIPPED: frozenset({_S.PENDING}),
}
_BLOCKING = frozenset({_S.FAILED, _S.DENIED, _S.SKIPPED})
_FAILING = frozenset({_S.FAILED, _S.DENIED})
_WAITING = frozenset({_S.AWAITING_APPROVAL, _S.UNKNOWN})

_R = RunState
# a run is driven again whatever its state (resume); running -> running: after a crash
RUN_MOVES: Mapping[RunState, frozenset[RunState]] = {
    _R.RUNNING: frozenset({_R.RUNNING, _R.SUCCEEDED, _R.FAILED, _R.HALTED}),
    _R.SUCCEEDED: frozenset({_R.RUNNING}),
    _R.FAILED: frozenset({_R.RUNNING}),
    _R.HALTED: frozenset({_R.RUNNING}),
}

_A = ApprovalState
APPROVAL_MOVES: Mapping[ApprovalState, frozenset[ApprovalState]] = {
    _A.PENDING: frozenset({_A.APPROVED, _A.DENIED, _A.EXPIRED, _A.SUPERSEDED}),
    _A.APPROVED: frozenset(),
    _A.DENIED: frozenset(),
    _A.EXPIRED: frozenset(),
    _A.SUPERSEDED: frozenset(),
}


def _parse(kind: type[_E], value: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(kind)
        raise StateError(f"{value!r} is not a {kind.__name__} (one of: {names})") from None

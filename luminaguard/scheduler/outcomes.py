"""How steps and runs end, as values, and the exit code each run state maps to.

An executor returns an ``Outcome`` (it never raises for a step that cannot run, fails
or waits for a person); the runner records it, the reporter shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from luminaguard.scheduler.states import RunState, StepState
from luminaguard.scheduler.store import StepRecord

EXIT_CODES = {RunState.SUCCEEDED: 0, RunState.FAILED: 2, RunState.HALTED: 3}


@dataclass(frozen=True)
class ApprovalRequest:
    """A request for a person's approval of one exact action, to record with the halt."""

    action_hash: str
    card: dict[str, Any]
    expires: float


@dataclass(frozen=True)
class Outcome:
    """How a step, or one attempt of it, ended: the state it moves to and why.

    ``outputs`` and ``error`` are stored with the step; ``why`` is audited with the move;
    ``note`` is shown beside the state when there is no error; ``request`` is a new
    approval request the step halts on.
    """

    state: StepState
    outputs: Mapping[str, object] = field(default_factory=dict)
    error: str | None = None
    why: Mapping[str, object] = field(default_factory=dict)
    note: str = ""
    request: ApprovalRequest | None = None

    @classmethod
    def succeeded(cls, outputs: Mapping[str, object]) -> Outcome:
        """The step did what it was asked to."""
        return cls(StepState.SUCCEEDED, outputs)

    @classmethod
    def failed(cls, error: str, outputs: Mapping[str, object] | None = None) -> Outcome:
        """The step could not run, or ran and failed."""
        return cls(StepState.FAILED, outputs or {}, error)

    @classmethod
    def ended(cls, outputs: Mapping[str, object], error: str | None) -> Outcome:
        """An action carried out: succeeded without an ``error``, else failed."""
        return cls.succeeded(outputs) if error is None else cls.failed(error, outputs)

    @classmethod
    def skipped(cls, because: str) -> Outcome:
        """The step does not run: its condition is false, or a step it needs did not succeed."""
        return cls(StepState.SKIPPED, why={"because": because})

    @classmethod
    def denied(cls, reason: str | None, error: str) -> Outcome:
        """The step may not run: its approval was denied, expired or does not hold."""
        return cls(StepState.DENIED, error=error, why={"reason": reason})

    @classmethod
    def awaiting(cls, reason: str, request: ApprovalRequest | None = None) -> Outcome:
        """The step waits for a person's decision (on ``request``, when it is new)."""
        return cls(StepState.AWAITING_APPROVAL, note=reason, request=request)

    @property
    def event(self) -> str:
        """The audit event of the move."""
        return "step.halted" if self.state is StepState.AWAITING_APPROVAL else f"step.{self.state}"

    @property
    def detail(self) -> str:
        """What the reporter shows beside the state."""
        return self.error or self.note


def run_state(steps: Mapping[str, StepRecord]) -> RunState:
    """``halted`` while a person must decide, else ``failed``, ``succeeded`` once all ended."""
    states = {record.state for record in steps.values()}
    if any(state.needs_person for state in states):
        return RunState.HALTED
    if any(state.fails_run for state in states):
        return RunState.FAILED
    if all(state.is_final for state in states):
        return RunState.SUCCEEDED
    return RunState.HALTED  # steps wait for ones that wait for a person


@dataclass(frozen=True)
class RunResult:
    """A run's state after the runner stopped driving it."""

    run_id: str
    state: RunState
    steps: dict[str, StepRecord]

    @property
    def exit_code(self) -> int:
        """0 succeeded, 2 failed, 3 halted awaiting a decision."""
        return EXIT_CODES[self.state]

"""How runs end, as values, and the exit code each maps to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from luminaguard.scheduler.states import RunState
from luminaguard.scheduler.store import StepRecord

EXIT_CODES = {RunState.SUCCEEDED: 0, RunState.FAILED: 2, RunState.HALTED: 3}


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

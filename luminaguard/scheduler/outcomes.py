"""How runs end, as values, and the exit code each maps to."""

from __future__ import annotations

from dataclasses import dataclass

from luminaguard.scheduler.store import StepRecord

EXIT_CODES = {"succeeded": 0, "failed": 2, "halted": 3}


def run_state(steps: dict[str, StepRecord]) -> str:
    """``halted`` while a person must decide, else ``failed`` or ``succeeded``."""
    states = {record.state for record in steps.values()}
    if states & {"awaiting_approval", "unknown"}:
        return "halted"
    if states & {"failed", "denied"}:
        return "failed"
    if states <= {"succeeded", "skipped"}:
        return "succeeded"
    return "halted"


@dataclass(frozen=True)
class RunResult:
    """A run's state after the runner stopped driving it."""

    run_id: str
    state: str
    steps: dict[str, StepRecord]

    @property
    def exit_code(self) -> int:
        """0 succeeded, 2 failed, 3 halted awaiting a decision."""
        return EXIT_CODES[self.state]

"""The scheduler: drives a compiled plan, durably, halting Red steps for a person.

``Runner`` drives runs on one backend, journalling into one ``RunStore`` (SQLite with a
keyed audit chain). A step's life is ``StepState`` with its allowed moves; an executor's
result is an ``Outcome``; a run ends as a ``RunResult``. Names are imported on first use.
"""

from __future__ import annotations

from luminaguard.lazy import exports

TYPE_CHECKING = False  # mypy treats this name as true
if TYPE_CHECKING:
    from luminaguard.scheduler.outcomes import Outcome, RunResult
    from luminaguard.scheduler.runner import Runner
    from luminaguard.scheduler.states import ApprovalState, RunState, StateError, StepState
    from luminaguard.scheduler.store import RunStore
    from luminaguard.scheduler.templates import StepError

__all__ = [
    "ApprovalState",
    "Outcome",
    "RunResult",
    "RunState",
    "RunStore",
    "Runner",
    "StateError",
    "StepError",
    "StepState",
]
__getattr__ = exports(
    __name__,
    {
        "ApprovalState": "luminaguard.scheduler.states",
        "Outcome": "luminaguard.scheduler.outcomes",
        "RunResult": "luminaguard.scheduler.outcomes",
        "RunState": "luminaguard.scheduler.states",
        "RunStore": "luminaguard.scheduler.store",
        "Runner": "luminaguard.scheduler.runner",
        "StateError": "luminaguard.scheduler.states",
        "StepError": "luminaguard.scheduler.templates",
        "StepState": "luminaguard.scheduler.states",
    },
)

"""Step progress: a live rich view on a terminal, plain lines otherwise."""

from __future__ import annotations

import contextlib
import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from luminaguard.hostile_text import visible
from luminaguard.scheduler.runner import Reporter
from luminaguard.scheduler.states import StepState

_S = StepState
_STYLES: dict[str, str] = {
    _S.SUCCEEDED: "green", _S.FAILED: "red", _S.DENIED: "red", _S.AWAITING_APPROVAL: "yellow",
    _S.RUNNING: "cyan", _S.SKIPPED: "dim", _S.UNKNOWN: "magenta", _S.PENDING: "dim",
}  # fmt: skip


class PlainReporter:
    """One line per state change, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def step(self, step_id: str, state: str, detail: str = "") -> None:
        """Print the change."""
        line = f"{time.strftime('%H:%M:%S')} {step_id:<20} {state}" + (
            f"  {detail}" if detail else ""
        )
        print(visible(line), file=self.stream, flush=True)


class LiveReporter:
    """A table of steps redrawn in place while the run goes on."""

    def __init__(self, step_ids: list[str], console: Console) -> None:
        self.states: dict[str, tuple[str, str]] = {
            step_id: (StepState.PENDING, "") for step_id in step_ids
        }
        self.live = Live(self._table(), console=console, refresh_per_second=8, transient=False)

    def _table(self) -> Table:
        table = Table(box=None, show_header=True)
        for column in ("step", "state", "detail"):
            table.add_column(column)
        for step_id, (state, detail) in self.states.items():
            table.add_row(
                Text(visible(step_id)),
                Text(visible(state), style=_STYLES.get(state, "")),
                Text(visible(detail)[:80]),
            )
        return table

    def step(self, step_id: str, state: str, detail: str = "") -> None:
        """Redraw with the change."""
        self.states[step_id] = (state, detail)
        self.live.update(self._table())

    def __enter__(self) -> LiveReporter:
        self.live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.live.__exit__(kind, value, tb)


def make_reporter(step_ids: list[str]) -> Reporter:
    """A live view on a terminal, plain lines otherwise."""
    if sys.stdout.isatty():
        return LiveReporter(step_ids, Console())
    return PlainReporter()


def showing(reporter: Reporter) -> contextlib.AbstractContextManager[object]:
    """The context to report in: the live view drawn while it lasts, or nothing."""
    return reporter if isinstance(reporter, LiveReporter) else contextlib.nullcontext()

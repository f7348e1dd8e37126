"""``luminaguard status [RUN]``: runs, or one run's steps."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table
from rich.text import Text

from luminaguard.gitops.applied import AppliedState
from luminaguard.hostile_text import visible
from luminaguard.ui.exit_codes import OK
from luminaguard.ui.session import Session, in_session
from luminaguard.ui.state import add_state_option


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``status`` subcommand."""
    parser = commands.add_parser("status", help="list runs, or show one run's steps")
    parser.add_argument("run_id", nargs="?", metavar="RUN")
    add_state_option(parser)
    parser.set_defaults(handler=run, read_only=True)


def _cells(*texts: object) -> list[Text]:
    """Table cells shown as they are: no markup read, no control character obeyed."""
    return [Text(visible(text)) for text in texts]


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def print_gitops(console: Console, applied: AppliedState) -> None:
    """The reconciled source and each object it applied, with their conditions."""
    source = applied.source()
    if source is None:
        return
    title = Text(visible(f"source {source.url}: {source.state}"))
    table = Table("applied revision", "last tried", "reason", title=title)
    table.add_row(*_cells(source.revision or "(none)", source.attempted or "", source.reason))
    console.print(table)
    objects = Table("object", "condition", "revision", "file", "reason")
    for item in applied.objects().values():
        name = f"{item.kind}/{item.name}"
        objects.add_row(*_cells(name, item.state, item.revision, item.path, item.reason))
    console.print(objects)


@in_session
def run(args: argparse.Namespace, session: Session) -> int:
    """Print the table."""
    store = session.store
    console = Console(soft_wrap=False)
    if args.run_id is None:
        table = Table("run", "workload", "state", "updated")
        for record in store.runs():
            table.add_row(*_cells(record.id, record.workload, record.state, _when(record.updated)))
        console.print(table)
        if store.has_table("gitops_source"):  # none yet: nothing was reconciled
            print_gitops(console, AppliedState(store))
        return OK
    record = store.run(args.run_id)
    table = Table(
        "#",
        "step",
        "state",
        "attempts",
        "detail",
        title=Text(visible(f"run {record.id}: {record.state}")),
    )
    for planned in record.plan.steps:
        step = store.steps(record.id)[planned.id]
        detail = step.error or (
            f"exit {step.outputs.get('exit_code')}" if "exit_code" in step.outputs else ""
        )
        table.add_row(*_cells(planned.order, planned.id, step.state, step.attempts, detail))
    console.print(table)
    return OK

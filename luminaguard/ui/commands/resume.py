"""``luminaguard resume RUN``: continue a halted or interrupted run."""

from __future__ import annotations

import argparse

from luminaguard.scheduler.runner import Runner
from luminaguard.ui.commands.run import drive, report_result
from luminaguard.ui.progress import make_reporter
from luminaguard.ui.session import Session, in_session
from luminaguard.ui.state import add_state_option


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``resume`` subcommand."""
    parser = commands.add_parser("resume", help="continue a run after approvals or a crash")
    parser.add_argument("run_id", metavar="RUN")
    parser.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="steps running at once"
    )
    add_state_option(parser)
    parser.set_defaults(handler=run)


@in_session
async def run(args: argparse.Namespace, session: Session) -> int:
    """Recover, then drive the run as far as it goes."""
    store = session.store
    record = store.run(args.run_id)
    reporter = make_reporter([step.id for step in record.plan.steps])
    backend = session.backend(record.backend)
    runner = Runner(store, backend, concurrency=args.concurrency, reporter=reporter)
    result = await drive(runner.resume(args.run_id), reporter)
    return report_result(result, store)

"""``luminaguard retry RUN STEP`` / ``retry RUN --failed``: re-open failed steps of a run.

Each failed step moves back to pending, audited ``step.retried`` with who (``--as``)
and why (``--reason``); the steps skipped because of it are re-opened with it. Nothing
runs here: ``luminaguard resume RUN`` runs them (or the server serving the folder
does, by itself). Denied steps are not retried: a person said no.
"""

from __future__ import annotations

import argparse

from luminaguard.errors import UsageError
from luminaguard.scheduler import retries
from luminaguard.ui.commands.approvals import say_who_continues, token_role
from luminaguard.ui.exit_codes import OK
from luminaguard.ui.session import Session, in_session
from luminaguard.ui.state import add_identity_option, add_state_option, identity


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``retry`` subcommand."""
    parser = commands.add_parser(
        "retry", help="re-open a failed step (and the steps it skipped) to run again on resume"
    )
    parser.add_argument("run_id", metavar="RUN")
    parser.add_argument("step_id", metavar="STEP", nargs="?")
    parser.add_argument("--failed", action="store_true", help="retry every failed step")
    add_identity_option(parser)
    add_state_option(parser)
    parser.set_defaults(handler=run)


@in_session
def run(args: argparse.Namespace, session: Session) -> int:
    """Re-open the step (or every failed step), then say who continues the run."""
    if (args.step_id is None) == (not args.failed):
        raise UsageError("retry: give RUN and STEP, or RUN --failed (not both)")
    store, who = session.store, identity(args)
    named = None if args.failed else [args.step_id]
    done = retries.retry(store, args.run_id, named, who, args.reason, token_role(store, who))
    for step_id in done.retried:
        print(f"{step_id}: retried by {done.who}; it runs again")
    if done.reopened:
        print(f"re-opened with it (they were skipped): {', '.join(done.reopened)}")
    say_who_continues(session, args.run_id)
    return OK

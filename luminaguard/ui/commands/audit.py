"""``luminaguard audit show [RUN]``, ``audit verify [--anchor HASH]`` and ``audit head``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from luminaguard.hostile_text import visible
from luminaguard.ui.exit_codes import INVALID, OK
from luminaguard.ui.session import Session, in_session
from luminaguard.ui.state import add_state_option


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``audit`` subcommand."""
    parser = commands.add_parser("audit", help="show or verify the HMAC-chained audit log")
    actions = parser.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print the records (of one run)")
    show.add_argument("run_id", nargs="?", metavar="RUN")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    add_state_option(show)
    show.set_defaults(handler=show_records, read_only=True)
    verify = actions.add_parser(
        "verify", help="check the chain and its head; exit 1 naming any broken record"
    )
    verify.add_argument(
        "--anchor",
        metavar="HASH",
        help="a head kept elsewhere (from `audit head`): the log must still hold it",
    )
    add_state_option(verify)
    verify.set_defaults(handler=verify_chain, read_only=True)
    head = actions.add_parser(
        "head", help="print the newest record's number and hash: keep it to --anchor later"
    )
    add_state_option(head)
    head.set_defaults(handler=print_head, read_only=True)


@in_session
def show_records(args: argparse.Namespace, session: Session) -> int:
    """Print records in order."""
    for record in session.store.audit.records(args.run_id):
        if args.json:
            print(json.dumps(record.__dict__, sort_keys=True))
            continue
        when = time.strftime("%H:%M:%S", time.localtime(record.time))
        data = json.dumps(record.data, sort_keys=True)
        step = record.step_id or "-"
        print(visible(f"{record.seq:>6} {when} {record.run_id} {step} {record.event} {data[:160]}"))
    return OK


@in_session
def verify_chain(args: argparse.Namespace, session: Session) -> int:
    """Verify every record's HMAC, its link to the previous one, the head and the anchor."""
    store = session.store
    problems = store.audit.verify(args.anchor)
    for problem in problems:
        print(visible(f"audit: {problem}"))
    if problems:
        return INVALID
    anchored = ", holds the anchor" if args.anchor else ""
    print(f"audit: {store.audit.count()} records, chain intact{anchored}")
    print(f"head: {store.audit.count()} {store.audit.head()}")
    return OK


@in_session
def print_head(args: argparse.Namespace, session: Session) -> int:
    """Print ``COUNT HASH`` of the newest record (exit 1 if the log does not verify)."""
    store = session.store
    problems = store.audit.verify()
    for problem in problems:
        print(f"audit: {problem}", file=sys.stderr)
    print(f"{store.audit.count()} {store.audit.head()}")
    return INVALID if problems else OK

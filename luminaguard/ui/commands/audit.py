"""``luminaguard audit show [RUN]`` and ``luminaguard audit verify``."""

from __future__ import annotations

import argparse
import json
import time

from luminaguard.hostile_text import visible
from luminaguard.ui.exit_codes import INVALID, OK
from luminaguard.ui.state import add_state_option, open_store


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``audit`` subcommand."""
    parser = commands.add_parser("audit", help="show or verify the hash-chained audit log")
    actions = parser.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print the records (of one run)")
    show.add_argument("run_id", nargs="?", metavar="RUN")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    add_state_option(show)
    show.set_defaults(handler=show_records)
    verify = actions.add_parser(
        "verify", help="check the hash chain; exit 1 naming any broken record"
    )
    add_state_option(verify)
    verify.set_defaults(handler=verify_chain)


def show_records(args: argparse.Namespace) -> int:
    """Print records in order."""
    for record in open_store(args).audit.records(args.run_id):
        if args.json:
            print(json.dumps(record.__dict__, sort_keys=True))
            continue
        when = time.strftime("%H:%M:%S", time.localtime(record.time))
        data = json.dumps(record.data, sort_keys=True)
        step = record.step_id or "-"
        print(visible(f"{record.seq:>6} {when} {record.run_id} {step} {record.event} {data[:160]}"))
    return OK


def verify_chain(args: argparse.Namespace) -> int:
    """Verify every record's hash and its link to the previous one."""
    store = open_store(args)
    problems = store.audit.verify()
    for problem in problems:
        print(visible(f"audit: {problem}"))
    if problems:
        return INVALID
    count = len(store.audit.records())
    print(f"audit: {count} records, chain intact (head {store.audit.head()[:23]})")
    return OK

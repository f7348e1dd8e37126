"""The ``luminaguard`` command: parse the command line, dispatch to a subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from luminaguard import __version__
from luminaguard.ui.commands import (
    approvals,
    audit,
    doctor,
    gitops,
    image,
    lock,
    plan,
    policy,
    pool,
    resume,
    retry,
    run,
    schema,
    serve,
    status,
    token,
    validate,
)
from luminaguard.ui.exit_codes import INVALID, guarded

_SUBCOMMANDS = (
    validate,
    plan,
    run,
    status,
    resume,
    retry,
    gitops,
    serve,
    approvals,
    audit,
    policy,
    lock,
    image,
    pool,
    token,
    doctor,
    schema,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="luminaguard",
        description="Run AI-agent work declaratively and contained: Red steps halt for approval.",
        epilog="exit codes: 0 done, 1 invalid input, 2 step failed or denied, "
        "3 halted awaiting approval, 4 internal error",
    )
    parser.add_argument("--version", action="version", version=f"luminaguard {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _SUBCOMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse reports usage errors itself
        return INVALID if exc.code not in (0, None) else 0
    return guarded(lambda: int(args.handler(args)))


if __name__ == "__main__":
    sys.exit(main())

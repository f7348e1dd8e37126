"""``luminaguard doctor``: which backends this machine can run, and why not."""

from __future__ import annotations

import argparse

from luminaguard.hypervisor.registry import report
from luminaguard.ui.exit_codes import OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``doctor`` subcommand."""
    parser = commands.add_parser("doctor", help="report which backends this machine can run")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per backend."""
    for name, availability in report().items():
        mark = "yes" if availability.usable else "no "
        print(f"{name:<12} {mark}  {availability.detail}")
    return OK

"""``luminaguard schema [--out DIR] [--check]``: JSON Schemas of the kinds for editors."""

from __future__ import annotations

import argparse
from pathlib import Path

from luminaguard.config.schema import stale_schemas, write_schemas
from luminaguard.ui.exit_codes import INVALID, OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``schema`` subcommand."""
    parser = commands.add_parser("schema", help="write the JSON Schemas of the kinds")
    parser.add_argument(
        "--out", default="schemas", metavar="DIR", help="folder to write (default: schemas)"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if DIR is stale"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the schemas, or check that the folder holds exactly what would be written."""
    directory = Path(args.out)
    if args.check:
        stale = stale_schemas(directory)
        for name in stale:
            print(f"stale: {directory / name} (run: luminaguard schema --out {directory})")
        return INVALID if stale else OK
    for name in write_schemas(directory):
        print(f"wrote {directory / name}")
    return OK

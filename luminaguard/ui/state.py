"""Where run state lives, and who the person at the keyboard is."""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

from luminaguard.scheduler.store import RunStore

DEFAULT_STATE = ".luminaguard"


def add_state_option(parser: argparse.ArgumentParser) -> None:
    """``--state DIR``: the folder holding runs.db and the agents' work folders."""
    parser.add_argument(
        "--state",
        default=os.environ.get("LUMINAGUARD_STATE", DEFAULT_STATE),
        metavar="DIR",
        help=f"run state folder (default: $LUMINAGUARD_STATE or {DEFAULT_STATE})",
    )


def open_store(args: argparse.Namespace) -> RunStore:
    """The run store of ``--state``."""
    return RunStore(Path(args.state))


def add_identity_option(parser: argparse.ArgumentParser) -> None:
    """``--as NAME`` and ``--reason TEXT`` for decisions a person makes."""
    parser.add_argument(
        "--as",
        dest="identity",
        metavar="NAME",
        help="who decides (default: $LUMINAGUARD_USER or login name)",
    )
    parser.add_argument("--reason", default=None, help="why, recorded in the audit log")


def identity(args: argparse.Namespace) -> str:
    """The deciding person's name."""
    return str(args.identity or os.environ.get("LUMINAGUARD_USER") or getpass.getuser())

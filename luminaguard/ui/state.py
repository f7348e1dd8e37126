"""Where run state lives, the key of its audit log, and who the person at the keyboard is."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from luminaguard.scheduler.approvers import person
from luminaguard.scheduler.private import check_run_id
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
    parser.add_argument(
        "--audit-key",
        default=os.environ.get("LUMINAGUARD_AUDIT_KEY"),
        metavar="FILE",
        help="the audit log's HMAC key, kept outside the state folder (default:"
        " $LUMINAGUARD_AUDIT_KEY, else audit.key in the state folder, made with the state)",
    )


def open_store(args: argparse.Namespace) -> RunStore:
    """The run store of ``--state``, its audit log keyed by ``--audit-key`` when given."""
    if getattr(args, "run_id", None) is not None:
        check_run_id(args.run_id)  # before anything is created
    key = getattr(args, "audit_key", None)
    read_only = bool(getattr(args, "read_only", False))  # set by the commands that only read
    return RunStore(Path(args.state), audit_key=Path(key) if key else None, read_only=read_only)


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
    return str(args.identity or person())

"""``luminaguard diff`` and ``luminaguard reconcile``: a source against what was applied.

``diff`` prints what reconciling would change and exits 0 when nothing would, 1 when
something would, 2 on an error (an invalid source, one that cannot be fetched), as
``flux diff`` does, so that it can gate a pull request. ``reconcile`` applies it once
(``serve --source`` does it continuously). Both take the source as a folder, or as a
git repository with ``--git URL`` (``--branch``, ``--revision``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from luminaguard.config.diagnostics import ConfigError
from luminaguard.errors import LuminaGuardError
from luminaguard.gitops.applied import AppliedState, Condition
from luminaguard.gitops.diff import Change, render, to_json
from luminaguard.gitops.reconcile import Outcome, Reconciler
from luminaguard.gitops.source import Source, source_for
from luminaguard.hostile_text import visible
from luminaguard.hypervisor.registry import DEFAULT
from luminaguard.ui.diagnostics import render_config_error
from luminaguard.ui.exit_codes import INVALID, OK
from luminaguard.ui.session import Session, in_session

if TYPE_CHECKING:
    from luminaguard.ui.gitops_runtime import LocalRuntime
from luminaguard.ui.state import add_state_option

#: ``diff``'s exit codes, as ``flux diff``'s.
SAME, DIFFERENT, ERROR = 0, 1, 2


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """The source: a folder (PATH), or ``--git URL`` at ``--branch`` or ``--revision``."""
    parser.add_argument("path", nargs="?", metavar="PATH", help="a folder of documents")
    parser.add_argument("--git", metavar="URL", help="a git repository (https, ssh, file, path)")
    parser.add_argument("--branch", metavar="B", help="the git branch (default: its HEAD)")
    parser.add_argument("--revision", metavar="R", help="a git commit to pin")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``diff`` and ``reconcile`` subcommands."""
    diff = commands.add_parser(
        "diff", help="what reconciling a source would change (exit 0 none, 1 some, 2 error)"
    )
    add_source_options(diff)
    diff.add_argument("--json", action="store_true", help="the changes as JSON")
    add_state_option(diff)
    diff.set_defaults(handler=run_diff)
    reconcile = commands.add_parser(
        "reconcile", help="apply a source once: pools, policies, images, triggered workloads"
    )
    add_source_options(reconcile)
    reconcile.add_argument(
        "--prune", action="store_true", help="remove what disappeared from the source"
    )
    reconcile.add_argument("--dry-run", action="store_true", help="print the diff, apply nothing")
    reconcile.add_argument("--backend", help=f"where triggered workloads run (default: {DEFAULT})")
    add_state_option(reconcile)
    reconcile.set_defaults(handler=run_reconcile)


def open_source(args: argparse.Namespace, state: Path) -> Source:
    """The source the arguments name (``UsageError`` when they name none or two)."""
    if (args.path is None) == (args.git is None):
        raise LuminaGuardError("give the source as a folder PATH or as --git URL (one of them)")
    if args.path is not None and (args.branch or args.revision):
        raise LuminaGuardError("--branch and --revision apply to a --git source")
    spec = args.git if args.git is not None else args.path
    return source_for(spec, state / "sources", args.branch, args.revision, git=args.git is not None)


def _reconciler(args: argparse.Namespace, session: Session, runtime: LocalRuntime) -> Reconciler:
    store = session.store
    source = open_source(args, store.state_dir)
    return Reconciler(source, AppliedState(store), runtime, prune=getattr(args, "prune", False))


def _runtime(session: Session, backend: str) -> LocalRuntime:
    """The local runtime (imported when a command needs it: it loads the runner)."""
    from luminaguard.ui.gitops_runtime import LocalRuntime

    return LocalRuntime(session, backend)


@in_session
def run_diff(args: argparse.Namespace, session: Session) -> int:
    """Print the changes; 0 none, 1 some, 2 on an error."""
    try:
        reconciler = _reconciler(args, session, _runtime(session, DEFAULT))
        _, changes = reconciler.plan()
    except ConfigError as exc:
        sys.stderr.write(render_config_error(exc))
        return ERROR
    except LuminaGuardError as exc:
        print(f"error: {visible(exc)}", file=sys.stderr)
        return ERROR
    _print_changes(changes, args.json, prune=False)
    return DIFFERENT if changes else SAME


def _print_changes(changes: list[Change], as_json: bool, prune: bool) -> None:
    if as_json:
        print(json.dumps(to_json(changes), indent=2, sort_keys=True))
    else:
        sys.stdout.write(visible(render(changes, prune), multiline=True))


@in_session
async def run_reconcile(args: argparse.Namespace, session: Session) -> int:
    """Apply the source once; start (and drive) the workloads it triggers."""
    runtime = _runtime(session, args.backend or DEFAULT)
    reconciler = _reconciler(args, session, runtime)
    if args.dry_run:
        _, changes = reconciler.plan()
        _print_changes(changes, False, args.prune)
        return OK
    outcome = reconciler.reconcile()
    _report(outcome, args.prune)
    if outcome.state is Condition.STALLED:
        return INVALID
    return await runtime.drive_started()


def _report(outcome: Outcome, prune: bool) -> None:
    revision = outcome.revision or "(none)"
    if outcome.state is Condition.STALLED:
        print(visible(f"source stalled at revision {revision}: nothing applied"), file=sys.stderr)
        print(visible(outcome.reason, multiline=True), file=sys.stderr)
        return
    sys.stdout.write(visible(render(outcome.changes, prune), multiline=True))
    for name, run_id in outcome.started.items():
        print(visible(f"started {run_id} (workload {name}: its plan changed)"))
    print(visible(f"applied revision {revision}"))

"""``luminaguard policy replay --audit STATE PATH...``: past actions against changed policies."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from luminaguard.compiler.compile import Bundle, load_checked
from luminaguard.errors import UsageError
from luminaguard.gitops.source import source_for
from luminaguard.hostile_text import visible
from luminaguard.policy.engine import PolicyEngine
from luminaguard.policy.replay import Audited, Replayed, ReplayReport, replay
from luminaguard.scheduler.store import RunStore
from luminaguard.ui.exit_codes import INVALID, OK
from luminaguard.ui.policy_report import decided


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``policy replay``."""
    parser = actions.add_parser(
        "replay", help="decide audited actions again with changed policies; list what changes"
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="the changed policies")
    parser.add_argument(
        "--git", metavar="URL", help="take the policies from this git repository instead"
    )
    parser.add_argument("--revision", metavar="R", help="the --git commit (default: HEAD)")
    parser.add_argument("--branch", metavar="B", help="the --git branch (default: its HEAD)")
    parser.add_argument("--audit", required=True, metavar="STATE", help="a state folder")
    parser.add_argument("--policy", metavar="NAME", help="ask this policy for every action")
    parser.add_argument(
        "--allow-loosening", action="store_true", help="exit 0 even if Red actions turn Green"
    )
    parser.set_defaults(handler=run)


def _engines(bundle: Bundle) -> dict[str, PolicyEngine]:
    return {name: bundle.engine(name) for name in bundle.catalog.names("Policy")}


def _line(change: Replayed) -> str:
    was = f"{change.before_risk} by {change.before_rule or 'the default'}"
    step = visible(f"{change.run_id}/{change.step_id}: {change.action.describe()}")
    now = visible(f"now {decided(change.after)}: {change.after.reason}")
    return f"  {step}\n      {visible(f'was {was}')}; {now}"


def render(report: ReplayReport) -> str:
    """Loosened decisions first, then tightened ones, then the counts."""
    lines = [f"Red -> Green (loosened, needs review): {len(report.loosened)}"]
    lines += [_line(change) for change in report.loosened]
    lines.append(f"Green -> Red (tightened): {len(report.tightened)}")
    lines += [_line(change) for change in report.tightened]
    lines.append(f"unchanged: {report.unchanged}")
    lines += [f"not replayed: {count} ({why})" for why, count in sorted(report.skipped.items())]
    return "\n".join(lines) + "\n"


def _policies(args: argparse.Namespace) -> dict[str, PolicyEngine]:
    """The engines of the policies under PATH..., or in ``--git`` at ``--revision``."""
    if (args.git is None) == (not args.paths):
        raise UsageError("give the changed policies as PATH... or as --git URL (one of them)")
    if args.git is None:
        return _engines(load_checked(args.paths))
    with tempfile.TemporaryDirectory(prefix="luminaguard-replay-") as cache:
        source = source_for(args.git, Path(cache), args.branch, args.revision, git=True)
        snapshot = source.fetch()
        print(visible(f"policies of {snapshot.url} at {snapshot.revision}"))
        return _engines(load_checked([str(snapshot.root)]))


def run(args: argparse.Namespace) -> int:
    """Exit 1 when any Red decision would turn Green, unless ``--allow-loosening``."""
    engines = _policies(args)
    state = Path(args.audit)
    if not (state / "runs.db").is_file():
        raise UsageError(f"no audit log in {state} (expected {state / 'runs.db'})")
    store = RunStore(state)
    try:
        records = [
            Audited(r.run_id, r.step_id, r.data)
            for r in store.audit.records()
            if r.event == "decision"
        ]
    finally:
        store.close()
    report = replay(records, engines.get, args.policy)
    print(
        f"replayed {report.actions} distinct actions ({len(records)} audited decisions)"
        f" from {args.audit}"
    )
    print(render(report), end="")
    return INVALID if report.loosened and not args.allow_loosening else OK

"""``luminaguard policy test PATH...``: run PolicyTest files, report failures and coverage."""

from __future__ import annotations

import argparse
import sys

from luminaguard.compiler.compile import load_checked
from luminaguard.policy.testing import run_tests
from luminaguard.ui import policy_report
from luminaguard.ui.exit_codes import INVALID, OK


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``policy test``."""
    parser = actions.add_parser(
        "test", help="run policy tests (*.test.yaml): expected risk and rule per action"
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="policies and their tests")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    parser.add_argument("--run", metavar="PATTERN", help="only tests whose SUITE/NAME matches")
    parser.add_argument("--coverage", action="store_true", help="report rule coverage")
    parser.add_argument(
        "--fail-under", type=float, metavar="N", help="fail below N%% rule coverage"
    )
    parser.add_argument("--format", choices=("text", "junit", "json"), default="text")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Exit 1 on a failed test, an empty selection or coverage below ``--fail-under``."""
    bundle = load_checked(args.paths)
    documents = bundle.catalog.by_kind.get("PolicyTest", {}).values()
    report = run_tests(documents, bundle.engine, args.run)
    if not report.results:
        what = f" match --run {args.run!r}" if args.run else " found under the paths given"
        print(f"error: no policy tests{what}", file=sys.stderr)
        return INVALID
    if args.format == "junit":
        sys.stdout.write(policy_report.junit(report))
    elif args.format == "json":
        sys.stdout.write(policy_report.as_json(report))
    else:
        shown = policy_report.text(report, args.verbose, args.coverage, args.fail_under)
        sys.stdout.write(shown)
    below = args.fail_under is not None and report.percent < args.fail_under
    return INVALID if report.failures or below else OK

"""``luminaguard plan PATH... [--workload NAME] [--param K=V] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys

from pydantic import JsonValue
from rich.console import Console

from luminaguard.compiler import compile_paths
from luminaguard.compiler.lock import add_lock_option, find_lock
from luminaguard.errors import UsageError
from luminaguard.ui.exit_codes import OK
from luminaguard.ui.plan_view import print_plan


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``plan`` subcommand."""
    parser = commands.add_parser(
        "plan", help="show what would run, Green or Red, without running it"
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML files or folders")
    parser.add_argument("--workload", metavar="NAME", help="plan only this workload")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a workload param (VALUE is read as JSON when it parses, else as text)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_lock_option(parser)
    parser.set_defaults(handler=run)


def parse_params(pairs: list[str]) -> dict[str, JsonValue]:
    """``["n=3", "name=x"]`` → ``{"n": 3, "name": "x"}``."""
    params: dict[str, JsonValue] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--param expects NAME=VALUE, got {pair!r}")
        try:
            params[name] = json.loads(text)
        except json.JSONDecodeError:
            params[name] = text
    return params


def run(args: argparse.Namespace) -> int:
    """Compile and print the plan(s)."""
    _, plans = compile_paths(
        args.paths, args.workload, parse_params(args.param), find_lock(args.lock)
    )
    if args.json:
        if len(plans) != 1:
            names = ", ".join(plan.workload for plan in plans) or "none"
            raise UsageError(f"--json prints one plan; choose one with --workload ({names})")
        sys.stdout.write(plans[0].to_json())
        return OK
    console = Console(soft_wrap=False)
    for plan in plans:
        print_plan(plan, console)
    if not plans:
        console.print("no workloads found")
    return OK

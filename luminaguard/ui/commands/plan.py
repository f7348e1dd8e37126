"""``luminaguard plan PATH... [--workload NAME] [--param K=V] [--format FORMAT | --json]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from pydantic import JsonValue
from rich.console import Console

from luminaguard.compiler import compile_paths
from luminaguard.compiler.graph import plan_graph, to_dot, to_mermaid
from luminaguard.compiler.lock import add_lock_option, find_lock
from luminaguard.compiler.plan import Plan
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
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--format",
        choices=("table", *_ONE_PLAN),
        default="table",
        help="table (default); json, the plan; mermaid or dot, its DAG (one workload each)",
    )
    output.add_argument(
        "--json", dest="format", action="store_const", const="json", help="--format json"
    )
    add_lock_option(parser)
    parser.set_defaults(handler=run)


#: the outputs that print one plan
_ONE_PLAN: dict[str, Callable[[Plan], str]] = {
    "json": Plan.to_json,
    "mermaid": lambda plan: to_mermaid(plan_graph(plan)),
    "dot": lambda plan: to_dot(plan_graph(plan)),
}


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
    if args.format != "table":
        if len(plans) != 1:
            names = ", ".join(plan.workload for plan in plans) or "none"
            raise UsageError(
                f"--format {args.format} prints one plan; choose one with --workload ({names})"
            )
        sys.stdout.write(_ONE_PLAN[args.format](plans[0]))
        return OK
    console = Console(soft_wrap=False)
    for plan in plans:
        print_plan(plan, console)
    if not plans:
        console.print("no workloads found")
    return OK

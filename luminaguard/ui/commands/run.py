"""``luminaguard run PATH... [--workload NAME] [--backend NAME] [--state DIR] [--run-id ID]``.

On a terminal, a run halted for approval asks for the decisions and goes on
(``luminaguard.ui.inline``); ``--no-wait`` (or no terminal) exits 3 instead.
With ``--server URL`` the plan is compiled here and run by that server (``run_remote``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable

from luminaguard.compiler import Plan, compile_paths
from luminaguard.compiler.lock import add_lock_option, find_lock
from luminaguard.errors import UsageError
from luminaguard.hostile_text import visible
from luminaguard.hypervisor.registry import DEFAULT
from luminaguard.scheduler.outcomes import RunResult
from luminaguard.scheduler.private import check_run_id
from luminaguard.scheduler.runner import Reporter, Runner
from luminaguard.scheduler.states import ApprovalState, RunState, StepState
from luminaguard.scheduler.store import RunStore
from luminaguard.ui.commands.plan import parse_params
from luminaguard.ui.inline import follow
from luminaguard.ui.progress import make_reporter, showing
from luminaguard.ui.run_remote import run_remote
from luminaguard.ui.session import session
from luminaguard.ui.state import add_state_option, identity


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` subcommand."""
    parser = commands.add_parser(
        "run", help="compile and run a workload; Red steps halt for approval"
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML files or folders")
    parser.add_argument(
        "--workload", metavar="NAME", help="the workload to run (needed if several)"
    )
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="override a param"
    )
    parser.add_argument(
        "--backend",
        help=f"where steps run (default: {DEFAULT}; with --server, the server's default)",
    )
    parser.add_argument("--run-id", metavar="ID", help="name the run (default: generated)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help="steps running at once (a server uses its own --per-run)",
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        help="submit the compiled plan to this `luminaguard serve` and follow the run there",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("LUMINAGUARD_TOKEN"),
        help="bearer token for --server (default: $LUMINAGUARD_TOKEN)",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="on a terminal too, exit 3 when a Red step halts instead of asking for a decision",
    )
    parser.add_argument(
        "--as",
        dest="identity",
        metavar="NAME",
        help="who decides at the prompt (default: $LUMINAGUARD_USER or login name)",
    )
    add_state_option(parser)
    add_lock_option(parser)
    parser.set_defaults(handler=run)


_EXPLAINED = frozenset({StepState.FAILED, StepState.DENIED, StepState.UNKNOWN})


def new_run_id(workload: str) -> str:
    """A readable, unique run id: workload, time, random suffix."""
    return f"{workload}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def report_result(result: RunResult, store: RunStore) -> int:
    """Say how the run ended and what to do next; return its exit code."""
    print(visible(f"run {result.run_id}: {result.state}"))
    for step_id, record in result.steps.items():
        if record.state in _EXPLAINED and record.error:
            print(visible(f"  {step_id}: {record.state}: {record.error}"))
    if result.state is RunState.HALTED:
        for request in store.approvals(ApprovalState.PENDING, result.run_id):
            card = request.card
            what = f"{card.get('action')} ({card.get('reason')})"
            print(visible(f"  {request.step_id}: awaiting approval: {what}"))
        for step_id, record in result.steps.items():
            if record.state is StepState.UNKNOWN:
                print(f"  {step_id}: unknown: the runner stopped during it")
        print(f"next: luminaguard approvals; luminaguard approve|deny {result.run_id} STEP")
        print(f"      then: luminaguard resume {result.run_id}")
    return result.exit_code


async def drive(runner_call: Awaitable[RunResult], reporter: Reporter) -> RunResult:
    """Await the runner with the reporter (live when it is a LiveReporter)."""
    with showing(reporter):
        return await runner_call


def compile_one(args: argparse.Namespace) -> Plan:
    """The plan of the one workload the arguments name (ConfigError, UsageError if not)."""
    if args.run_id is not None:
        check_run_id(args.run_id)
    _, plans = compile_paths(
        args.paths, args.workload, parse_params(args.param), find_lock(args.lock)
    )
    if len(plans) != 1:
        names = ", ".join(plan.workload for plan in plans) or "none"
        raise UsageError(f"run takes one workload; choose with --workload ({names})")
    return plans[0]


def run(args: argparse.Namespace) -> int:
    """Compile the workload here; run it here, or on the server of ``--server``."""
    plan = compile_one(args)
    if args.server is not None:
        return run_remote(args, plan)
    return asyncio.run(run_here(args, plan))


async def run_here(args: argparse.Namespace, plan: Plan) -> int:
    """Start a run of ``plan`` in this process, drive it until done or halted."""
    async with session(args) as opened:
        store, name = opened.store, args.backend or DEFAULT
        reporter = make_reporter([step.id for step in plan.steps])
        runner = Runner(
            store, opened.backend(name), concurrency=args.concurrency, reporter=reporter
        )
        run_id = args.run_id or new_run_id(plan.workload)
        print(f"run {run_id}: workload {plan.workload}, plan {plan.hash[:19]}, backend {name}")
        result = await drive(runner.start(plan, run_id), reporter)
        if asks(args):

            def resume() -> Awaitable[RunResult]:
                return drive(runner.resume(run_id), reporter)

            result = await follow(store, result, identity(args), resume)
        return report_result(result, store)


def asks(args: argparse.Namespace) -> bool:
    """Whether a halted run asks for decisions here: on a terminal, without ``--no-wait``."""
    return not args.no_wait and sys.stdin.isatty() and sys.stdout.isatty()

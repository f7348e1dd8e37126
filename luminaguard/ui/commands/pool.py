"""``luminaguard pool status PATH...``: start each Pool, fill it to ``warm``, report it.

LuminaGuard runs no daemon, so this shows pools started by the command itself: how
long restores take here, how much memory warm clones hold, whether refill works.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from luminaguard.compiler import load_checked
from luminaguard.hypervisor.base import PoolConfig
from luminaguard.hypervisor.vm.backend import VmBackend
from luminaguard.scheduler.sandboxes import absolute_pool, pool_config
from luminaguard.ui.exit_codes import INVALID, OK
from luminaguard.ui.session import Session, in_session


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``pool`` subcommand."""
    parser = commands.add_parser("pool", help="warm pools of micro-VMs")
    actions = parser.add_subparsers(dest="pool_action", required=True, metavar="ACTION")
    status = actions.add_parser(
        "status", help="start the pools defined under PATH, fill them, report"
    )
    status.add_argument("paths", nargs="+", metavar="PATH", help="YAML files or folders")
    status.add_argument(
        "--timeout", type=float, default=120, help="seconds to wait for the pools to fill"
    )
    status.add_argument(
        "--backend", default="qemu", help="the micro-VM backend to start them on (default: qemu)"
    )
    status.set_defaults(handler=run)


async def _fill(
    backend: VmBackend, configs: list[PoolConfig], timeout: float
) -> dict[str, dict[str, Any]]:
    backend.configure_pools(configs)
    started = {config.name: await backend.pool(config.name) for config in configs}
    deadline = time.monotonic() + timeout
    while (
        any(p.status()["warm"] < p.warm for p in started.values()) and time.monotonic() < deadline
    ):
        await asyncio.sleep(0.1)
    return {name: pool.status() for name, pool in started.items()}


@in_session
async def run(args: argparse.Namespace, session: Session) -> int:
    """Fill every Pool found under the paths and print one row per pool."""
    bundle = load_checked(args.paths)
    names = bundle.catalog.names("Pool")
    if not names:
        print("no Pool documents found")
        return INVALID
    backend = session.backend(args.backend)
    if not isinstance(backend, VmBackend):
        print(f"pools need a micro-VM backend; {backend.name} is not one")
        return INVALID
    if not backend.availability().usable:
        print(f"pools need the {backend.name} backend: {backend.availability().detail}")
        return INVALID
    configs = [pool_config(name, absolute_pool(bundle.planned_pool(name))) for name in names]
    statuses = await _fill(backend, configs, args.timeout)
    table = Table("pool", "warm", "busy", "refilling", "restore p50/p99", "memory RSS/PSS",
                  title="pools started by this command")  # fmt: skip
    for config in configs:
        status = statuses[config.name]
        latency = f"{status['restore_p50_ms']}/{status['restore_p99_ms']} ms"
        memory = f"{status['rss_mib']}/{status['pss_mib']} MiB"
        row = [f"{status['warm']}/{config.warm}", str(status["busy"]), str(status["refilling"])]
        table.add_row(config.name, *row, latency, memory)
    Console().print(table)
    return OK

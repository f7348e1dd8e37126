"""Sandbox spawn time, and scheduler overhead per Green step against the bare command.

Targets (../shared/DESIGN.md, issue 3): spawn <= 20 ms median; a 100-step Green
workload through the scheduler <= 1.1x the same commands run directly in the sandbox.
Run: .venv/bin/python bench/sandbox_bench.py [--spawns N] [--steps N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from luminaguard.compiler import compile_paths
from luminaguard.hypervisor.base import Backend, ExecResult, SandboxSpec
from luminaguard.hypervisor.gvisor.backend import GvisorBackend
from luminaguard.hypervisor.linux import work_disk
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.store import RunStore

COMMAND = "true"


def workload(steps: int, idempotent: bool = False) -> str:
    head = (
        "apiVersion: luminaguard.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules:\n"
        "    - {id: t, match: {kind: run, command: 'true'}, risk: green, reason: no effect}\n---\n"
        "apiVersion: luminaguard.dev/v1\nkind: Agent\nmetadata: {name: a}\nspec: {policy: p}\n---\n"
        "apiVersion: luminaguard.dev/v1\nkind: Workload\nmetadata: {name: chain}\nspec:\n  steps:\n"
    )
    extra = [(f", needs: [s{i - 1}]" if i else "") for i in range(steps)]
    if idempotent:
        extra = [e + ", idempotent: true" for e in extra]
    lines = [f"    - {{id: s{i}, agent: a, run: '{COMMAND}'{extra[i]}}}" for i in range(steps)]
    return head + "\n".join(lines) + "\n"


async def spawn_times(count: int, root: Path, backend: Backend) -> list[float]:
    workdir = root / f"spawn-{backend.name}" / "work"
    handle = await backend.create(SandboxSpec(name="bench", workdir=workdir))
    times = []
    for _ in range(count):
        start = time.perf_counter()
        result = await backend.exec(handle, COMMAND, 10)
        times.append(time.perf_counter() - start)
        assert result.ok, result
    await backend.destroy(handle)
    return times


async def direct(steps: int, root: Path) -> float:
    backend = SandboxBackend()
    handle = await backend.create(SandboxSpec(name="a", workdir=root / "direct" / "work"))
    start = time.perf_counter()
    for _ in range(steps):
        assert (await backend.exec(handle, COMMAND, 10)).ok
    elapsed = time.perf_counter() - start
    await backend.destroy(handle)
    return elapsed


async def scheduled(plan_path: str, root: Path, name: str) -> float:
    _, plans = compile_paths([plan_path])
    store = RunStore(root / name)
    start = time.perf_counter()
    result = await Runner(store, SandboxBackend()).start(plans[0], "bench")
    elapsed = time.perf_counter() - start
    assert result.state == "succeeded", result
    store.close()
    return elapsed


class NoOpBackend:
    """Runs nothing: isolates the scheduler's own cost per step."""

    name = "noop"
    micro_vm = False

    async def create(self, spec: SandboxSpec) -> SandboxSpec:
        return spec

    async def exec(self, handle: SandboxSpec, command: str, timeout: float) -> ExecResult:
        return ExecResult(0, "", "", 0.0)

    async def destroy(self, handle: SandboxSpec) -> None:
        return None


async def scheduler_alone(plan_path: str, root: Path) -> float:
    _, plans = compile_paths([plan_path])
    store = RunStore(root / "noop")
    start = time.perf_counter()
    await Runner(store, NoOpBackend()).start(plans[0], "noop")  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def detach_work_disks(root: Path) -> None:
    if os.getuid() == 0:
        for point in work_disk.mounted_under(root):
            work_disk.detach(point)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spawns", type=int, default=50)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        stack.callback(detach_work_disks, root)  # before the folder is removed
        plan_path = root / "chain.yaml"
        plan_path.write_text(workload(args.steps))
        repeatable_path = root / "repeatable.yaml"
        repeatable_path.write_text(workload(args.steps, idempotent=True))
        spawns = asyncio.run(spawn_times(args.spawns, root, SandboxBackend()))
        gvisor = GvisorBackend()
        gvisor_spawns = (
            asyncio.run(spawn_times(max(args.spawns // 5, 3), root, gvisor))
            if gvisor.availability().usable
            else None
        )
        alone = asyncio.run(scheduler_alone(str(plan_path), root))
        pairs = [
            (
                asyncio.run(direct(args.steps, root)),
                asyncio.run(scheduled(str(plan_path), root, f"s{i}")),
                asyncio.run(scheduled(str(repeatable_path), root, f"r{i}")),
            )
            for i in range(args.rounds)
        ]
    bare = statistics.median(d for d, _, _ in pairs)
    through = statistics.median(s for _, s, _ in pairs)
    repeatable = statistics.median(r for _, _, r in pairs)
    median, p90 = statistics.median(spawns), sorted(spawns)[int(len(spawns) * 0.9)]
    report = [
        f"sandbox spawn ('{COMMAND}' to exit), median of {args.spawns}: {median * 1000:.1f} ms"
        f"  (p90 {p90 * 1000:.1f} ms; target <= 20 ms)",
        "gvisor spawn, median: "
        + (
            f"{statistics.median(gvisor_spawns) * 1000:.1f} ms"
            if gvisor_spawns
            else "not measured (gvisor unusable here: see luminaguard doctor)"
        ),
        f"{args.steps}-step Green chain, median of {args.rounds} rounds: direct {bare:.2f} s,"
        f" through the scheduler {through:.2f} s",
        f"scheduler/direct = {through / bare:.3f}  (target <= 1.1);"
        f" overhead per step {(through - bare) / args.steps * 1000:.2f} ms",
        "same chain with idempotent: true steps (no fsync needed before each effect):"
        f" {repeatable / bare:.3f}",
        "scheduler alone (no-op backend, SQLite synchronous=FULL):"
        f" {alone / args.steps * 1000:.2f} ms per step",
        "reproduce: .venv/bin/python bench/sandbox_bench.py"
        f" --spawns {args.spawns} --steps {args.steps} --rounds {args.rounds}",
    ]
    print("\n".join(report))


if __name__ == "__main__":
    main()

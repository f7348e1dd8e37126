"""The namespace sandbox against bubblewrap and unshare: spawn, memory, a Green chain.

Targets (issue 16): a spawn of ``sh -c true`` costs no more wall or CPU time than
bwrap's, back to back and after 20 ms of idle; a live sandbox costs no more memory
than bwrap's; a Green chain through the scheduler costs <= 1.2x a loop of bwrap
running the same commands, per step. The peers (``bench/peers.py``) run in the same
rounds, interleaved, so a busy machine slows them alike; medians are quoted.
CPU time is the kernel's for every process involved: this process is the reaper of
the orphans a peer leaves (``peers.adopt_orphans``), and our zygote reaps its sandboxes.
Run: .venv/bin/python bench/sandbox_bench.py [--spawns N] [--steps N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from figures import emit
from peers import (
    adopt_orphans,
    bwrap_argv,
    descendants,
    memory_kib,
    own_cpu,
    reap_orphans,
    tree_cpu,
    unshare_argv,
)

from luminaguard.compiler import compile_paths
from luminaguard.hypervisor.base import ExecResult, SandboxSpec
from luminaguard.hypervisor.gvisor.backend import GvisorBackend
from luminaguard.hypervisor.linux import work_disk
from luminaguard.hypervisor.sandbox.backend import Sandbox, SandboxBackend
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.store import RunStore

ARGV = ["/bin/sh", "-c", "true"]  # what our exec runs for the step `run: 'true'`
IDLE = 0.02
LIVE = 8  # sandboxes alive at once for the memory figure


def workload(steps: int, idempotent: bool = False) -> str:
    """A chain of ``steps`` Green ``true`` steps, each needing the one before."""
    head = (
        "apiVersion: luminaguard.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules:\n"
        "    - {id: t, match: {kind: run, command: 'true'}, risk: green, reason: no effect}\n---\n"
        "apiVersion: luminaguard.dev/v1\nkind: Agent\nmetadata: {name: a}\nspec: {policy: p}\n---\n"
        "apiVersion: luminaguard.dev/v1\nkind: Workload\nmetadata: {name: chain}\nspec:\n  steps:\n"
    )
    extra = [(f", needs: [s{i - 1}]" if i else "") for i in range(steps)]
    if idempotent:
        extra = [e + ", idempotent: true" for e in extra]
    lines = [f"    - {{id: s{i}, agent: a, run: 'true'{extra[i]}}}" for i in range(steps)]
    return head + "\n".join(lines) + "\n"


class Spawns:
    """Wall times and CPU per spawn of one contender, back to back and after idle."""

    def __init__(self) -> None:
        self.wall: dict[bool, list[float]] = {False: [], True: []}
        self.cpu: dict[bool, list[float]] = {False: [], True: []}

    def line(self, name: str, idle: bool) -> str:
        wall, cpu = self.wall[idle], self.cpu[idle]
        if not wall:
            return f"  {name:<10} not measured (not installed)"
        return (
            f"  {name:<10} wall {statistics.median(wall) * 1000:5.2f} ms"
            f" (p90 {sorted(wall)[int(len(wall) * 0.9)] * 1000:5.2f})"
            f"   CPU {statistics.median(cpu) * 1000:5.2f} ms"
        )


class Ours:
    """Our sandbox: one backend and one sandbox, commands run through ``exec``."""

    def __init__(self, root: Path) -> None:
        self.backend = SandboxBackend()
        self.root = root
        self.handle: Sandbox | None = None

    async def start(self) -> None:
        handle = await self.backend.create(SandboxSpec(name="bench", workdir=self.root / "ours"))
        assert isinstance(handle, Sandbox)
        self.handle = handle
        assert (await self.run()).ok  # the zygote is started outside the timing

    async def run(self) -> ExecResult:
        assert self.handle is not None
        return await self.backend.exec(self.handle, "true", 10)

    def cpu(self) -> float:
        zygote = self.backend.zygote.pid
        return own_cpu() + (tree_cpu(zygote) if zygote else 0.0)


async def spawn_batch(
    count: int,
    idle: bool,
    run: Callable[[], object],
    cpu: Callable[[], float],
    into: Spawns,
    keep: set[int],
) -> None:
    """``count`` spawns; CPU per spawn is the batch's, idle time excluded (it is idle).

    Wall time ends when the caller knows the command's exit; CPU time includes what the
    spawn left running after that (bwrap's setup process), reaped before it is read;
    ``keep`` are the children that are not to be waited for (our zygote).
    """
    used = 0.0
    for _ in range(count):
        if idle:
            await asyncio.sleep(IDLE)
        before, start = cpu(), time.perf_counter()
        result = run()
        if asyncio.iscoroutine(result):
            result = await result
        into.wall[idle].append(time.perf_counter() - start)
        reap_orphans(keep)
        used += cpu() - before
    into.cpu[idle].append(used / count)


def peer(argv: list[str] | None) -> Callable[[], object] | None:
    if argv is None:
        return None
    return lambda: subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)


async def spawns(root: Path, count: int, rounds: int) -> dict[str, Spawns]:
    """Interleaved rounds of ``count`` spawns of each contender, back to back and idle."""
    ours = Ours(root)
    await ours.start()
    (root / "peer").mkdir()
    contenders: dict[str, Callable[[], object] | None] = {
        "luminaguard": ours.run,
        "bwrap": peer(bwrap_argv(root / "peer", ARGV)),
        "unshare": peer(unshare_argv(ARGV)),
    }
    found = {name: Spawns() for name in contenders}
    for _ in range(rounds):
        for idle in (False, True):
            for name, run in contenders.items():
                cpu = ours.cpu if name == "luminaguard" else own_cpu
                keep = {ours.backend.zygote.pid or 0}  # a zygote started again: the new one
                if run is not None:
                    await spawn_batch(count, idle, run, cpu, found[name], keep)
    assert ours.handle is not None
    await ours.backend.destroy(ours.handle)
    await ours.backend.aclose()
    return found


async def until_running(pid: int, program: str) -> None:
    """Wait until a process named ``program`` runs below ``pid`` (its setup is done)."""
    for _ in range(500):
        names = []
        for member in descendants(pid):
            with contextlib.suppress(OSError):
                names.append(Path("/proc", str(member), "comm").read_text().strip())
        if program in names:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{program} did not start below {pid}")


async def live_memory(root: Path) -> dict[str, tuple[float, float] | None]:
    """RSS and PSS (MB) per live sandbox running ``sleep``, LIVE of each kind at once."""
    found: dict[str, tuple[float, float] | None] = {}
    backend = SandboxBackend()
    handle = await backend.create(SandboxSpec(name="live", workdir=root / "live"))
    processes = [await backend.spawn(handle, ["sleep", "600"]) for _ in range(LIVE)]
    for process in processes:
        await until_running(process.pid, "sleep")
    found["luminaguard"] = _median_mb([memory_kib(p.pid) for p in processes])
    zygote = backend.zygote.pid
    found["(zygote, once)"] = _median_mb([memory_kib(zygote, tree=False)]) if zygote else None
    await backend.destroy(handle)
    await backend.aclose()
    for name, argv in (
        ("bwrap", bwrap_argv(root / "peer", ["sleep", "600"])),
        ("unshare", unshare_argv(["sleep", "600"])),
    ):
        found[name] = await _peer_memory(argv) if argv else None
    return found


async def _peer_memory(argv: list[str]) -> tuple[float, float]:
    # a session each: the kill reaches what the peer forked (unshare's sleep outlives it)
    started = [
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        for _ in range(LIVE)
    ]
    try:
        for process in started:
            await until_running(process.pid, "sleep")
        return _median_mb([memory_kib(p.pid) for p in started])
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait()
        reap_orphans(keep=set())


def _median_mb(pairs: list[tuple[int, int]]) -> tuple[float, float]:
    return (
        statistics.median(rss for rss, _ in pairs) / 1024,
        statistics.median(pss for _, pss in pairs) / 1024,
    )


async def scheduled(plan_path: Path, root: Path, name: str) -> float:
    """Seconds for the chain through the scheduler (in process: no command start-up)."""
    _, plans = compile_paths([str(plan_path)])
    store = RunStore(root / name)
    backend = SandboxBackend()
    start = time.perf_counter()
    result = await Runner(store, backend).start(plans[0], "bench")
    elapsed = time.perf_counter() - start
    assert result.state == "succeeded", result
    store.close()
    await backend.aclose()
    return elapsed


def bwrap_loop(root: Path, steps: int) -> float | None:
    argv = bwrap_argv(root / "peer", ARGV)
    if argv is None:
        return None
    start = time.perf_counter()
    for _ in range(steps):
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    reap_orphans(keep=set())
    return elapsed


async def chains(root: Path, steps: int, rounds: int) -> dict[str, list[float]]:
    """Interleaved rounds: the chain through the scheduler (plain and idempotent), bwrap."""
    chain, repeatable = root / "chain.yaml", root / "repeatable.yaml"
    chain.write_text(workload(steps))
    repeatable.write_text(workload(steps, idempotent=True))
    found: dict[str, list[float]] = {"scheduler": [], "idempotent": [], "bwrap": []}
    for i in range(rounds):
        found["scheduler"].append(await scheduled(chain, root, f"s{i}"))
        found["idempotent"].append(await scheduled(repeatable, root, f"r{i}"))
        if (loop := bwrap_loop(root, steps)) is not None:
            found["bwrap"].append(loop)
    return found


def gvisor_spawn(root: Path, count: int) -> str:
    backend = GvisorBackend()
    if not backend.availability().usable:
        return "not measured (gvisor unusable here: see luminaguard doctor)"

    async def go() -> list[float]:
        handle = await backend.create(SandboxSpec(name="g", workdir=root / "gvisor"))
        times = []
        for _ in range(count):
            start = time.perf_counter()
            assert (await backend.exec(handle, "true", 30)).ok
            times.append(time.perf_counter() - start)
        await backend.destroy(handle)
        return times

    return f"{statistics.median(asyncio.run(go())) * 1000:.0f} ms median of {count}"


def report(args: argparse.Namespace, found: dict[str, Spawns], memory: dict, chain: dict) -> None:
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Linux {platform.release()}")
    for idle in (False, True):
        kind = f"after {IDLE * 1000:.0f} ms idle" if idle else "back to back"
        count = args.spawns * args.rounds
        print(f"spawn of '{' '.join(ARGV)}' to exit, {kind} (median of {count}):")
        for name, spawned in found.items():
            print(spawned.line(name, idle))
        print("  " + _verdict(found, idle))
    print(f"memory per live sandbox running sleep ({LIVE} alive at once; median):")
    for name, figures in memory.items():
        text = f"RSS {figures[0]:5.2f} MB   PSS {figures[1]:5.2f} MB" if figures else "not measured"
        print(f"  {name:<15} {text}")
    per_step = {name: statistics.median(t) / args.steps for name, t in chain.items() if t}
    print(f"{args.steps}-step Green chain, per step (median of {args.rounds} rounds):")
    for name, cost in per_step.items():
        print(f"  {name:<10} {cost * 1000:5.2f} ms")
    if "bwrap" in per_step:
        ratio = per_step["scheduler"] / per_step["bwrap"]
        print(f"  scheduler / bwrap loop = {ratio:.2f}  (target <= 1.2)")
    emit_figures(found, memory, per_step)
    print(
        "reproduce: .venv/bin/python bench/sandbox_bench.py"
        f" --spawns {args.spawns} --steps {args.steps} --rounds {args.rounds}"
    )


def emit_figures(found: dict[str, Spawns], memory: dict, per_step: dict[str, float]) -> None:
    """The README's figures: spawn, memory per live sandbox, the chain per step."""
    ours, bwrap, unshare = found["luminaguard"], found["bwrap"], found["unshare"]
    for idle in (False, True):
        if not bwrap.wall[idle]:
            continue
        wall, cpu = statistics.median(ours.wall[idle]), statistics.median(ours.cpu[idle])
        peer_wall = statistics.median(bwrap.wall[idle])
        peer_cpu = statistics.median(bwrap.cpu[idle])
        floor = (
            f"; unshare {statistics.median(unshare.wall[idle]) * 1000:.1f} ms"
            if unshare.wall[idle]
            else ""
        )
        emit(
            "sandbox spawn, `sh -c true` to exit, "
            + (f"after {IDLE * 1000:.0f} ms idle" if idle else "back to back"),
            f"{wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU",
            f"bwrap {peer_wall * 1000:.1f} ms wall, {peer_cpu * 1000:.1f} ms CPU{floor}",
            "≤ bwrap, wall and CPU",
            wall <= peer_wall and cpu <= peer_cpu,
        )
    if memory.get("luminaguard") and memory.get("bwrap"):
        (rss, pss), (peer_rss, peer_pss) = memory["luminaguard"], memory["bwrap"]
        zygote = memory.get("(zygote, once)")
        once = f"; the zygote, once: {zygote[0]:.1f} MB RSS" if zygote else ""
        emit(
            f"memory per live sandbox running `sleep` ({LIVE} alive)",
            f"{rss:.1f} MB RSS, {pss:.2f} MB PSS{once}",
            f"bwrap {peer_rss:.1f} MB RSS, {peer_pss:.2f} MB PSS",
            "≤ bwrap",
            rss <= peer_rss and pss <= peer_pss,
        )
    if "bwrap" in per_step:
        ratio = per_step["scheduler"] / per_step["bwrap"]
        emit(
            "Green chain of `true` steps through the scheduler, per step",
            f"{per_step['scheduler'] * 1000:.1f} ms ({ratio:.2f}x)",
            f"a loop of bwrap: {per_step['bwrap'] * 1000:.1f} ms",
            "≤ 1.2x bwrap",
            ratio <= 1.2,
        )


def _verdict(found: dict[str, Spawns], idle: bool) -> str:
    ours, bwrap = found["luminaguard"], found["bwrap"]
    if not bwrap.wall[idle]:
        return "bwrap not installed (scripts/install-bwrap.sh): no comparison"
    wall = statistics.median(ours.wall[idle]) / statistics.median(bwrap.wall[idle])
    cpu = statistics.median(ours.cpu[idle]) / statistics.median(bwrap.cpu[idle])
    return f"luminaguard / bwrap: wall {wall:.2f}, CPU {cpu:.2f}  (target <= 1 each)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spawns", type=int, default=20, help="per contender and round")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    adopt_orphans()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        stack.callback(detach_work_disks, root)  # before the folder is removed
        found = asyncio.run(spawns(root, args.spawns, args.rounds))
        memory = asyncio.run(live_memory(root))
        chain = asyncio.run(chains(root, args.steps, args.rounds))
        print(f"gvisor spawn, '{' '.join(ARGV)}': {gvisor_spawn(root, 5)}")
    report(args, found, memory, chain)


def detach_work_disks(root: Path) -> None:
    if os.getuid() == 0:
        for point in work_disk.mounted_under(root):
            work_disk.detach(point)


if __name__ == "__main__":
    main()

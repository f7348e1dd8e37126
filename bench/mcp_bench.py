"""MCP call cost through LuminaGuard against the bare SDK, and server start-to-ready time.

Targets (issue 4): a Green call step end to end <= 1.2x the bare SDK call to the same
server in the same process (median over 200 calls); server start-to-ready inside the
sandbox reported against starting it directly.
Run: .venv/bin/python bench/mcp_bench.py [--calls N] [--starts N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

from figures import emit
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from luminaguard.compiler import compile_paths
from luminaguard.hypervisor.base import Mount, SandboxSpec
from luminaguard.hypervisor.linux import work_disk
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.store import RunStore
from luminaguard.transport.mcp_stdio import stdio_client as sandboxed_client
from luminaguard.ui.commands.lock import live_lock

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ROOT / "mcp-servers"
FILESYSTEM = "node_modules/.bin/mcp-server-filesystem"
ARGV = [f"/opt/mcp/{FILESYSTEM}", "/work"]  # inside the sandbox


def workload(calls: int) -> str:
    head = f"""\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {{name: p}}
spec:
  rules: [{{id: read, match: {{server: fs, tool: read_text_file}}, risk: green, reason: reads}}]
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {{name: a}}
spec:
  policy: p
  mounts: [{{source: {SERVERS}, target: /opt/mcp}}]
  mcp_servers: {{fs: {{command: /opt/mcp/{FILESYSTEM}, args: [/work]}}}}
  limits: {{memory_mib: 512}}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {{name: calls}}
spec:
  steps:
"""
    steps = [
        f"    - {{id: c{i}, agent: a, call: fs.read_text_file, args: {{path: /work/x.txt}}"
        + (f", needs: [c{i - 1}]" if i else "")
        + "}"
        for i in range(calls)
    ]
    return head + "\n".join(steps) + "\n"


async def bare_sdk(calls: int, folder: Path) -> list[float]:
    """The SDK's own stdio client, server started directly, one call at a time."""
    params = StdioServerParameters(command=str(SERVERS / FILESYSTEM), args=[str(folder)])
    times = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for _ in range(calls):
            start = time.perf_counter()
            await session.call_tool("read_text_file", {"path": str(folder / "x.txt")})
            times.append(time.perf_counter() - start)
    return times


async def through_scheduler(calls: int, root: Path) -> list[float]:
    """Per-step wall time of a chain of Green call steps through the whole runner."""
    path = root / "calls.yaml"
    path.write_text(workload(calls))
    async with SandboxBackend() as locking:
        lock = await live_lock([str(path)], locking)  # as `luminaguard lock` would write it
    _, plans = compile_paths([str(path)], lock=lock)
    store = RunStore(root / "state")
    work = root / "state" / "runs" / "bench" / "agents" / "a" / "work"
    work.mkdir(parents=True)
    (work / "x.txt").write_text("hello\n")
    marks: list[float] = []

    class Marks:
        def step(self, step_id: str, state: str, detail: str = "") -> None:
            if state == "succeeded":
                marks.append(time.perf_counter())

    async with SandboxBackend() as backend:
        result = await Runner(store, backend, reporter=Marks()).start(plans[0], "bench")
    assert result.state == "succeeded", result
    # the first step includes starting the server; step time = gap between completions
    return [b - a for a, b in itertools.pairwise(marks)]


async def start_to_ready(starts: int, root: Path) -> tuple[list[float], list[float]]:
    """Seconds from spawn to a completed MCP handshake: in the sandbox, and directly."""
    backend = SandboxBackend()
    spec = SandboxSpec(
        name="s",
        workdir=root / "ready" / "work",
        memory_mib=512,
        mounts=(Mount(SERVERS, "/opt/mcp"),),
    )
    handle = await backend.create(spec)
    sandboxed, direct = [], []
    for _ in range(starts):
        start = time.perf_counter()
        client = sandboxed_client("fs", lambda: backend.spawn(handle, ARGV, {}))
        await client.start(60)
        sandboxed.append(time.perf_counter() - start)
        await client.aclose()
        params = StdioServerParameters(command=str(SERVERS / FILESYSTEM), args=[str(root)])
        start = time.perf_counter()
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            direct.append(time.perf_counter() - start)
    await backend.destroy(handle)
    return sandboxed, direct


def detach_work_disks(root: Path) -> None:
    if os.getuid() == 0:
        for point in work_disk.mounted_under(root):
            work_disk.detach(point)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--starts", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        stack.callback(detach_work_disks, root)  # the sandboxes' /work disks, before rmtree
        (root / "x.txt").write_text("hello\n")
        bare = asyncio.run(bare_sdk(args.calls, root))
        ours = asyncio.run(through_scheduler(args.calls, root))
        sandboxed, direct = asyncio.run(start_to_ready(args.starts, root))
    b, o = statistics.median(bare), statistics.median(ours)
    report = [
        f"bare SDK call (server started directly), median of {len(bare)}: {b * 1000:.2f} ms",
        "Green call step through LuminaGuard (sandbox, decision, journal, audit),"
        f" median of {len(ours)}: {o * 1000:.2f} ms",
        f"ratio = {o / b:.2f}  (target <= 1.2)",
        f"server start to ready: in the sandbox {statistics.median(sandboxed) * 1000:.0f} ms,"
        f" directly {statistics.median(direct) * 1000:.0f} ms (median of {args.starts})",
        "reproduce: .venv/bin/python bench/mcp_bench.py"
        f" --calls {args.calls} --starts {args.starts}",
    ]
    print("\n".join(report))
    emit(
        "Green MCP `call` step end to end (sandboxed server, decision, journal, audit)",
        f"{o * 1000:.2f} ms ({o / b:.2f}x)",
        f"the bare SDK call: {b * 1000:.2f} ms",
        "≤ 1.2x",
        o / b <= 1.2,
    )
    emit(
        "MCP server start to ready, in the sandbox",
        f"{statistics.median(sandboxed) * 1000:.0f} ms",
        f"started directly: {statistics.median(direct) * 1000:.0f} ms",
        "—",
        None,
    )


if __name__ == "__main__":
    main()

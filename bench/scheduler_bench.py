"""The scheduler's own cost per step: a no-op backend, chains and wide fan-outs.

Target (issue 16): a Green chain's cost per step <= 1.2x a loop of bwrap running the
same commands (a bwrap spawn of ``true``: about 6-7 ms here), so the scheduler alone
(journal writes, the fsync before each effect, audit records, policy, templates,
readiness) must stay well under 1 ms a step, and flat as runs grow.

Each case compiles a generated workload (not timed), then times ``Runner.start`` on
a backend that runs nothing (wall time, which includes two fsyncs a step, and the
process's CPU time, which does not: on shared cores the CPU time is the steadier
figure), and counts the SQL statements the store executes.
Shapes: ``chain`` (each step needs the one before), ``wide`` (one root, every other
step needs it), ``templated`` (a chain whose commands use the previous step's output,
so each step renders a template and is decided at run time).
Run: .venv/bin/python bench/scheduler_bench.py [--sizes 100,1000,10000] [--shapes ...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from figures import emit

from luminaguard.compiler import compile_paths
from luminaguard.compiler.plan import Plan
from luminaguard.hypervisor.base import ExecResult, SandboxSpec
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.store import RunStore

SHAPES = ("chain", "wide", "templated")
HEAD = (
    "apiVersion: luminaguard.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules:\n"
    "    - {id: t, match: {kind: run, command: {regex: '^(true|echo) '}}, risk: green,"
    " reason: no effect}\n"
    "    - {id: u, match: {kind: run, command: 'true'}, risk: green, reason: no effect}\n---\n"
    "apiVersion: luminaguard.dev/v1\nkind: Agent\nmetadata: {name: a}\nspec: {policy: p}\n---\n"
    "apiVersion: luminaguard.dev/v1\nkind: Workload\nmetadata: {name: bench}\nspec:\n  steps:\n"
)


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


def workload(shape: str, steps: int) -> str:
    """A generated workload of ``steps`` steps of ``shape``."""
    lines = []
    for i in range(steps):
        command = "true"
        needs = ""
        if shape in ("chain", "templated") and i:
            needs = f", needs: [s{i - 1}]"
        elif shape == "wide" and i:
            needs = ", needs: [s0]"
        if shape == "templated" and i:
            command = f"echo {{{{ steps.s{i - 1}.outputs.exit_code }}}}"
        lines.append(f'    - {{id: s{i}, agent: a, run: "{command}"{needs}}}')
    return HEAD + "\n".join(lines) + "\n"


def compiled(shape: str, steps: int, root: Path) -> Plan:
    """The compiled plan of a generated workload."""
    path = root / f"{shape}-{steps}.yaml"
    path.write_text(workload(shape, steps))
    _, plans = compile_paths([str(path)])
    return plans[0]


async def drive(plan: Plan, root: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds to run ``plan`` on the no-op backend; SQL statements executed."""
    store = RunStore(root)
    statements = 0

    def count(_: str) -> None:
        nonlocal statements
        statements += 1

    store.db.set_trace_callback(count)
    start, cpu = time.perf_counter(), time.process_time()
    result = await Runner(store, NoOpBackend()).start(plan, "bench")  # type: ignore[arg-type]
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert result.state == "succeeded", result.state
    store.close()
    return elapsed, cpu, statements


def main() -> None:
    """Print the cost per step of each shape and size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    columns = f"{'shape':<10} {'steps':>6} {'wall s':>7} {'ms/step':>8}"
    print(f"{columns} {'CPU ms/step':>12} {'SQL/step':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for shape in args.shapes.split(","):
            for size in sizes:
                plan = compiled(shape, size, root)
                elapsed, cpu, statements = asyncio.run(drive(plan, root / f"{shape}-{size}"))
                line = f"{shape:<10} {size:>6} {elapsed:>7.2f} {elapsed / size * 1000:>8.3f}"
                print(f"{line} {cpu / size * 1000:>12.3f} {statements / size:>9.1f}", flush=True)
                if size == max(sizes):
                    emit(
                        f"the scheduler's own cost per step, {shape} of {size:,} steps (a backend"
                        " that runs nothing; fsync before each effect)",
                        f"{elapsed / size * 1000:.2f} ms wall, {cpu / size * 1000:.2f} ms CPU,"
                        f" {statements / size:.0f} SQL statements",
                        None,
                        "≤ 2 ms",
                        elapsed / size <= 0.002,
                    )
    print("reproduce: .venv/bin/python", " ".join(sys.argv))


if __name__ == "__main__":
    main()

"""Command start-up: how long a `luminaguard` command takes as a whole process.

Targets (the start-up issue): `luminaguard --version` <= 0.15 s; `approvals`, `approve
RUN STEP` and `status` <= 0.3 s. Each command is timed beside two peers measured in the
same rounds (`python -c pass`, and `python -c "import sqlite3, json"`: about the least a
command reading the state folder could import), the commands interleaved round by round
so a busy machine slows them alike; medians are quoted. `approve` decides a halted run's
Red step in a fresh copy of a state folder made once by `luminaguard run` (outside the
timing). Each run's CPU time is the kernel's (wait4), per process.

`--against DIR` times a second checkout's `luminaguard` (on PYTHONPATH) in the same
rounds: a before and after on one machine at one time.
Run: .venv/bin/python bench/startup_bench.py [--rounds N] [--against DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from figures import emit

from luminaguard.hypervisor.linux import work_disk

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "01-hello"  # greets (Green), then halts at clean_up (Red)
RUN, STEP = "bench", "clean_up"
# the console script's code; -P: the checkout on PYTHONPATH is run, not the current folder
LAUNCH = ["-P", "-c", "import sys; from luminaguard.ui.cli import main; sys.exit(main())"]


@dataclass
class Timed:
    """One command's runs: wall and CPU seconds."""

    name: str
    argv: list[str]
    target: float | None = None
    tree: Path | None = None  # the checkout put first on PYTHONPATH (None: a peer)
    fresh_state: Path | None = None  # copied to argv's state folder before each run
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def spawn(argv: list[str], tree: Path | None) -> tuple[float, float, int]:
    """Run ``argv`` once, output discarded: wall s, CPU s (the kernel's), exit code."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    quiet = [
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=quiet)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def once(timed: Timed) -> None:
    """One run of ``timed``; a command failing stops the benchmark."""
    if timed.fresh_state is not None:
        state = Path(timed.argv[timed.argv.index("--state") + 1])
        shutil.rmtree(state, ignore_errors=True)
        shutil.copytree(timed.fresh_state, state, ignore=shutil.ignore_patterns("*.disk"))
    wall, cpu, code = spawn(timed.argv, timed.tree)
    if code != 0:
        raise SystemExit(f"{timed.name}: exit {code}: {' '.join(timed.argv)}")
    timed.wall.append(wall)
    timed.cpu.append(cpu)


def halted_state(tree: Path, folder: Path) -> Path:
    """A state folder holding run RUN halted at its Red step STEP (made by `luminaguard run`)."""
    argv = [sys.executable, *LAUNCH, "run", str(EXAMPLE), "--state", str(folder)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [*argv, "--run-id", RUN], env=env, capture_output=True, text=True, check=False
    )
    detach(folder)  # the agent's /work disk, mounted (as root) for the step that ran
    if done.returncode != 3:
        raise SystemExit(f"luminaguard run: exit {done.returncode}, not 3\n{done.stderr}")
    return folder


def detach(root: Path) -> None:
    """Unmount the work disks under ``root`` (a run as root mounts its agents' ``/work``)."""
    if os.getuid() == 0:
        for point in work_disk.mounted_under(root):
            work_disk.detach(point)


def commands(tree: Path, label: str, work: Path) -> list[Timed]:
    """The four commands of ``tree``'s `luminaguard`, their state folders under ``work``."""
    lg = [sys.executable, *LAUNCH]
    empty, halted = work / f"{label}-empty", halted_state(tree, work / f"{label}-halted")
    decide = work / f"{label}-approve"
    return [
        Timed(f"{label} --version", [*lg, "--version"], 0.15, tree),
        Timed(f"{label} status", [*lg, "status", "--state", str(empty)], 0.3, tree),
        Timed(f"{label} approvals", [*lg, "approvals", "--state", str(empty)], 0.3, tree),
        Timed(
            f"{label} approve RUN STEP",
            [*lg, "approve", RUN, STEP, "--state", str(decide), "--as", "bench"],
            0.3,
            tree,
            fresh_state=halted,
        ),
    ]


def report(results: list[Timed], rounds: int) -> None:
    """A row per command: medians, the target, the ratio to `python -c pass`."""
    floor = statistics.median(results[0].wall)
    print(f"{rounds} interleaved rounds; medians (wall: this machine, now; CPU: the kernel's)")
    print(f"{'command':34} {'wall s':>8} {'CPU s':>8} {'target':>7} {'x pass':>7}")
    for timed in results:
        wall = statistics.median(timed.wall)
        target = f"{timed.target:.2f}" if timed.target else ""
        print(
            f"{timed.name:34} {wall:8.3f} {statistics.median(timed.cpu):8.3f}"
            f" {target:>7} {wall / floor:7.1f}"
        )


def emit_figures(results: list[Timed]) -> None:
    """The README's figures: each command against `python -c pass`, medians."""
    floor = statistics.median(results[0].wall)
    for timed in results[2:]:
        if timed.target is None or not timed.name.startswith("luminaguard"):
            continue
        wall = statistics.median(timed.wall)
        emit(
            f"`{timed.name}`, whole process",
            f"{wall:.3f} s ({statistics.median(timed.cpu):.3f} s CPU)",
            f"`python -c pass` {floor:.3f} s",
            f"≤ {timed.target:.2f} s",
            wall <= timed.target,
        )


def timed_rounds(args: argparse.Namespace, work: Path) -> list[Timed]:
    """Every command and peer, a warm-up run each, then ``args.rounds`` interleaved rounds."""
    results = [
        Timed("peer: python -c pass", [sys.executable, "-c", "pass"]),
        Timed("peer: import sqlite3, json", [sys.executable, "-c", "import sqlite3, json"]),
        *commands(ROOT, "luminaguard", work),
    ]
    if args.against is not None:
        results += commands(args.against.resolve(), "against", work)
    for timed in results:  # warm-up: caches, .pyc files, the empty state folders
        once(timed)
        timed.wall.clear()
        timed.cpu.clear()
    for _ in range(args.rounds):
        for timed in results:
            once(timed)
    return results


def main() -> None:
    """Time the commands and their peers, interleaved, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="runs of each command")
    parser.add_argument("--against", type=Path, help="also time this checkout's luminaguard")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lg-startup-") as folder:
        work = Path(folder)
        try:
            results = timed_rounds(args, work)
        finally:
            detach(work)
    report(results, args.rounds)
    emit_figures(results)
    again = " ".join(["bench/startup_bench.py", "--rounds", str(args.rounds)])
    if args.against is not None:
        again += f" --against {args.against}"
    print(f"reproduce: .venv/bin/python {again}")


if __name__ == "__main__":
    main()

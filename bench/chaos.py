"""Chaos, long form: SIGKILL runs at random points, resume them, check nothing was lost.

The trials of ``tests/chaos`` (see ``tests/chaos/harness.py``), ``--trials`` of them
(default 500), each of one of three kinds drawn from its seed:

- ``runner``: the runner is killed (SIGKILL, its whole process group) at a random moment;
- ``sandbox``: first a sandboxed step's command is killed mid-step, then the runner;
- ``mcp``: the workload also calls a stdio MCP server (tests/fixtures/servers/append.py)
  in the sandbox; the server is killed mid-call, then the runner.

Each trial is resumed to completion and checked: every step settled once, effects at
most once for non-idempotent steps (exactly once when it succeeded), the audit log
verifies, no process or cgroup of the runners is left. Prints the trials, the failures
with their seeds, and the command that replays each.

Run: .venv/bin/python bench/chaos.py [--trials N] [--seed S] [--span SECONDS]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figures import emit

from tests.chaos import harness

KINDS = ("runner", "sandbox", "mcp")


WEIGHTS = {"runner": 2, "sandbox": 1, "mcp": 1}


def kind_of(seed: int, kinds: list[str]) -> str:
    """The trial's kind, from its seed (and the kinds asked for), so that the seed replays it."""
    return random.Random(f"kind-{seed}").choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]


def _descendants(pid: int, depth: int = 5) -> list[int]:
    """The process's descendants (from ``/proc/PID/task/*/children``): fast to poll."""
    found: list[int] = []
    level = [pid]
    for _ in range(depth):
        below: list[int] = []
        for parent in level:
            try:
                for task in os.listdir(f"/proc/{parent}/task"):
                    text = Path("/proc", str(parent), "task", task, "children").read_text()
                    below += [int(child) for child in text.split()]
            except OSError:
                continue
        found += below
        level = below
    return found


def _killable(marker: bytes, runner: int) -> list[tuple[int, bytes]]:
    """The runner's descendants in its cgroups whose command line holds ``marker``."""
    found = []
    for pid in _descendants(runner):
        try:
            args = Path("/proc", str(pid), "cmdline").read_bytes()
            if (
                marker in args
                and f"@{runner}.".encode() in Path("/proc", str(pid), "cgroup").read_bytes()
            ):
                found.append((pid, args))
        except OSError:
            continue
    return found


def killer(target: Callable[[random.Random], bytes], lag: float) -> harness.Interference:
    """Once a process of the runner's shows ``target(rng)`` in its command line, wait a
    random moment of ``lag`` seconds and SIGKILL it (nothing if the run ends first)."""

    def interfere(trial: harness.Trial, runner: int, rng: random.Random) -> None:
        marker = target(rng)
        deadline = time.monotonic() + 10
        while not (found := _killable(marker, runner)):
            if harness.ended(runner, 0.001) or time.monotonic() > deadline:
                return  # the run ended (or failed) before the target ever ran
        time.sleep(rng.uniform(0, lag))
        pid, args = rng.choice(sorted(found))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        trial.interfered.append(args.replace(b"\0", b" ").decode(errors="replace")[:80])

    return interfere


def a_step(rng: random.Random) -> bytes:
    """A random step's sandboxed command (its effect's ``echo``), one lasting long enough."""
    lasting = [step for step, (_, _, before, after) in harness.STEPS.items() if before or after]
    return f"echo {rng.choice(sorted(lasting))} >>".encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    parser.add_argument("--span", type=float, default=0.6, help="kills within SECONDS")
    parser.add_argument("--keep", action="store_true", help="keep failed trials' state")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"trial kinds, of {','.join(KINDS)}"
    )
    args = parser.parse_args()
    chosen = [kind for kind in args.kinds.split(",") if kind]
    if not chosen or set(chosen) - set(KINDS):
        parser.error(f"--kinds: some of {','.join(KINDS)}")
    first = random.SystemRandom().randrange(10**6) if args.seed is None else args.seed
    base = Path(tempfile.mkdtemp(prefix="luminaguard-chaos-"))
    plans = {"plain": harness.compile_plan(base / "plain")}
    kinds = {kind_of(seed, chosen) for seed in range(first, first + args.trials)}
    if "mcp" in kinds:
        plans["mcp"] = harness.compile_plan(base / "mcp", calls=True)
    interference = {
        "runner": None,
        "sandbox": killer(a_step, 0.01),
        "mcp": killer(lambda rng: harness.SERVER.encode(), 2.0),
    }
    print(f"chaos: {args.trials} trials from seed {first}, kills within {args.span} s")
    failures: list[tuple[harness.Trial, str]] = []
    counts = dict.fromkeys(KINDS, 0)
    hits = dict.fromkeys(KINDS, 0)  # trials whose sandbox or server kill found its target
    started = time.monotonic()
    for seed in range(first, first + args.trials):
        kind = kind_of(seed, chosen)
        counts[kind] += 1
        plan = plans["mcp" if kind == "mcp" else "plain"]
        span = args.span * (4 if kind == "mcp" else 1)  # a server takes a while to start
        trial = harness.run_trial(base, plan, seed, span, interference[kind])
        hits[kind] += bool(trial.interfered)
        if trial.problems:
            failures.append((trial, kind))
            print(f"FAILED {kind} {trial}: {trial.interfered}")
            for problem in trial.problems:
                print(f"    {problem}")
        done = seed - first + 1
        if done % 50 == 0:
            print(f"  {done} trials, {len(failures)} failed, {time.monotonic() - started:.0f} s")
    elapsed = time.monotonic() - started
    print(f"trials: {args.trials} ({counts}), failures: {len(failures)}, {elapsed:.0f} s")
    print(f"sandbox processes killed mid-step: {hits['sandbox']}, MCP servers: {hits['mcp']}")
    emit(
        "SIGKILL at a random point (the runner, a sandboxed command, an MCP server), then"
        " resume: steps once, effects at most once, audit intact, nothing left",
        f"{len(failures)} failures in {args.trials} trials",
        None,
        "0 failures",
        not failures,
    )
    if failures:
        print("failed seeds:", " ".join(str(trial.seed) for trial, _ in failures))
        for trial, _ in failures:
            print(
                f"  replay: PYTHONPATH=. {sys.executable} bench/chaos.py --trials 1"
                f" --seed {trial.seed} --span {args.span} --kinds {args.kinds} --keep"
            )
    if not (failures and args.keep):
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"state of failed trials kept under {base}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

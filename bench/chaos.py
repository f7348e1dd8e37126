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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos import harness

KINDS = ("runner", "sandbox", "mcp")


def kind_of(seed: int) -> str:
    """The trial's kind, from its seed alone (so that the seed replays it)."""
    return random.Random(f"kind-{seed}").choices(KINDS, weights=(2, 1, 1))[0]


def _killable(marker: bytes, runner: int) -> list[tuple[int, bytes]]:
    """Processes of the runner's sandboxes whose command line holds ``marker``."""
    found = []
    for pid in harness.processes_of(runner):
        try:
            args = Path("/proc", str(pid), "cmdline").read_bytes()
        except OSError:
            continue
        if marker in args:
            found.append((pid, args))
    return found


def killer(marker: bytes, span: float) -> harness.Interference:
    """Kill, at a random moment of ``span``, one process of the runner's holding ``marker``."""

    def interfere(trial: harness.Trial, runner: int, rng: random.Random) -> None:
        deadline = time.monotonic() + rng.uniform(0, span)
        while time.monotonic() < deadline:
            if harness.wait_child(runner, 0.005) is not None:
                return  # the run ended first
        found = _killable(marker, runner)
        if found:
            pid, args = rng.choice(sorted(found))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            trial.interfered.append(args.replace(b"\0", b" ").decode(errors="replace")[:80])

    return interfere


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    parser.add_argument("--span", type=float, default=0.6, help="kills within SECONDS")
    parser.add_argument("--keep", action="store_true", help="keep failed trials' state")
    args = parser.parse_args()
    first = random.SystemRandom().randrange(10**6) if args.seed is None else args.seed
    base = Path(tempfile.mkdtemp(prefix="luminaguard-chaos-"))
    plans = {"plain": harness.compile_plan(base / "plain")}
    kinds = {kind_of(seed) for seed in range(first, first + args.trials)}
    if "mcp" in kinds:
        plans["mcp"] = harness.compile_plan(base / "mcp", calls=True)
    interference = {
        "runner": None,
        "sandbox": killer(harness.MARK.encode(), args.span / 2),
        "mcp": killer(harness.SERVER.encode(), args.span),
    }
    print(f"chaos: {args.trials} trials from seed {first}, kills within {args.span} s")
    failures: list[tuple[harness.Trial, str]] = []
    counts = dict.fromkeys(KINDS, 0)
    hits = dict.fromkeys(KINDS, 0)  # trials whose sandbox or server kill found its target
    started = time.monotonic()
    for seed in range(first, first + args.trials):
        kind = kind_of(seed)
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
    print(f"sandbox processes killed mid-step: {hits['sandbox']}, servers mid-call: {hits['mcp']}")
    if failures:
        print("failed seeds:", " ".join(str(trial.seed) for trial, _ in failures))
        for trial, _ in failures:
            print(
                f"  replay: PYTHONPATH=. {sys.executable} bench/chaos.py --trials 1"
                f" --seed {trial.seed} --span {args.span} --keep"
            )
    if not (failures and args.keep):
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"state of failed trials kept under {base}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

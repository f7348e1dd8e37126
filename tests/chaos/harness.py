"""Chaos trials: SIGKILL a runner at a random moment, resume it, check nothing was lost.

A trial forks a child of this (already imported) process that drives a run of
``WORKLOAD`` on the namespace sandbox, kills the child's process group with SIGKILL
after a random delay (the sandbox's own processes are left to die as they would in a
crash), checks that nothing of the killed runner outlives it, then resumes the run in
another forked child, settles ``unknown`` steps the way a careful operator would (marks
one done whose effect is seen, lets one whose effect is not run again), and checks:

- every step succeeded, recorded done once in the audit log, which verifies;
- a step's effect (a line with its id in ``/work/effects.log``) happened exactly once
  for non-idempotent steps, at least once for idempotent ones; a step finished before
  the kill was not run again; an ``unknown`` step's effect happened at most once;
- no process and no cgroup of either runner is left once the resume has finished.

Forking needs a process with no other thread and no running event loop: each child
runs its own ``asyncio.run``; this process never starts a loop or a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from luminaguard.compiler.compile import compile_paths
from luminaguard.compiler.lock import load_lock
from luminaguard.compiler.plan import Plan
from luminaguard.hypervisor.linux import cgroups, work_disk
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from luminaguard.scheduler import decisions
from luminaguard.scheduler.lease import LeaseHeld
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.states import StepState
from luminaguard.scheduler.store import RunStore
from tests.conftest import ROOT
from tests.integration import ask_server

T = TypeVar("T")
RUN = "r"
#: the agent: its sandboxes' cgroups are named after it
AGENT = "chaos"
#: the marker every step's command carries, to find its processes
MARK = "chaos-step"
#: step id: (needs, idempotent, command before the effect, command after it)
STEPS: dict[str, tuple[list[str], bool, str, str]] = {
    "fetch": ([], False, "", "sleep 0.01"),
    "left": (["fetch"], True, "sleep 0.02", ""),
    "middle": (["fetch"], False, "", "sleep 0.02"),
    "right": (["fetch"], True, "sleep 0.01", "sleep 0.01"),
    "join": (["left", "middle"], False, "sleep 0.01", ""),
    "side": (["right"], True, "", ""),
    "ship": (["join", "side"], False, "", "sleep 0.02"),
}
#: call steps of the MCP form (``calls=True``): step id: needs; each appends its id too
CALLS: dict[str, list[str]] = {"record": ["fetch"], "note": ["record"]}
#: the stdio MCP server of the call steps, in the sandbox
SERVER = "append.py"
POLICY = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - id: safe
      match: {program: [sleep, echo, "true"], redirects: {path: /work/*.log}}
      risk: green
      reason: logs only
    - id: rec
      match: {server: rec}
      risk: green
      reason: appends to a log
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: chaos}
spec:
  policy: p
"""
SERVERS = f"""\
  mounts: [{ask_server.MOUNTS}]
  mcp_servers:
    rec: {{command: {ask_server.COMMAND}, args: [/opt/lg/tests/fixtures/servers/{SERVER}]}}
"""
STEPS_HEADER = """\
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
"""
KILLED = -signal.SIGKILL
#: exit codes of a driving child
DONE, HALTED, HELD, BROKE = 0, 3, 4, 1


def command(step_id: str) -> str:
    _, _, before, after = STEPS[step_id]
    parts = [before, f"echo {step_id} >> /work/effects.log", after, f"true {MARK}"]
    return "; ".join(part for part in parts if part)


def workload(calls: bool = False) -> str:
    """The workload: ``STEPS`` (idempotent ones retried once), and ``CALLS`` if asked."""
    lines = []
    for step_id, (needs, idempotent, _, _) in STEPS.items():
        more = ", idempotent: true, retries: 1" if idempotent else ""
        lines.append(
            f"    - {{id: {step_id}, agent: {AGENT}, run: {command(step_id)!r},"
            f" needs: {needs}{more}}}"
        )
    for step_id, needs in CALLS.items() if calls else ():
        lines.append(
            f"    - {{id: {step_id}, agent: {AGENT}, call: rec.append,"
            f" args: {{line: {step_id}}}, needs: {needs}}}"
        )
    return POLICY + (SERVERS if calls else "") + STEPS_HEADER + "\n".join(lines) + "\n"


def compile_plan(folder: Path, calls: bool = False) -> Plan:
    """The workload compiled (with its MCP calls, locked against the server, if asked)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "w.yaml"
    path.write_text(workload(calls))
    lock = None
    if calls:  # in a process of its own: this one must stay free of threads for its forks
        lock_path = folder / "luminaguard.lock"
        argv = [sys.executable, "-m", "luminaguard", "lock", str(path), "--lock", str(lock_path)]
        subprocess.run(argv, check=True, cwd=ROOT, capture_output=True, timeout=120)
        lock = load_lock(lock_path)
    _, plans = compile_paths([str(path)], lock=lock)
    return plans[0]


def _drive(state: Path, plan: Plan | None) -> int:
    async def go() -> int:
        store = RunStore(state)
        try:
            async with SandboxBackend() as backend:
                runner = Runner(store, backend, concurrency=4)
                if plan is not None:
                    result = await runner.start(plan, RUN)
                else:
                    result = await runner.resume(RUN)
            return DONE if result.state == "succeeded" else HALTED
        finally:
            store.close()

    try:
        return asyncio.run(go())
    except LeaseHeld:
        return HELD
    except BaseException:
        traceback.print_exc()
        return BROKE


def fork_driver(state: Path, plan: Plan | None) -> int:
    """A child driving the run (starting it with ``plan``, else resuming it): its pid.

    The child leads a process group of its own, killed whole by ``kill``.
    """
    alive = [t for t in threading.enumerate() if t is not threading.main_thread()]
    assert not alive, f"forking a process with threads running: {alive}"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = BROKE
        try:
            # a coverage tracer inherited from pytest: its data dies with the child anyway
            sys.settrace(None)
            os.setpgid(0, 0)
            code = _drive(state, plan)
        finally:
            os._exit(code)
    os.setpgid(pid, pid)  # also here: the kill may come before the child's own call
    return pid


def ended(pid: int, timeout: float | None = None) -> bool:
    """Whether the child has ended, waiting ``timeout`` at most; it is not reaped."""
    handle = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([handle], [], [], timeout)
    finally:
        os.close(handle)
    return bool(ready)


def wait_child(pid: int, timeout: float | None = None) -> int | None:
    """The child's exit code (negative: killed by that signal), or None if still running."""
    if not ended(pid, timeout):
        return None
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def kill(pid: int) -> int:
    """SIGKILL the child's process group; its exit code."""
    os.killpg(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def cgroups_of(*runners: int) -> list[Path]:
    """The cgroups runners of these pids created and that are still there."""
    marks = [f"@{pid}." for pid in runners]
    found = []
    for parent in cgroups.parents():
        with contextlib.suppress(FileNotFoundError):
            found += [Path(e.path) for e in os.scandir(parent) if any(m in e.name for m in marks)]
    return found


def processes_of(*runners: int) -> dict[int, str]:
    """Processes of the runners' sandboxes: their zygotes and helpers (whose argv ends in
    the runner's pid), members of their cgroups (named with it), any running a step."""
    zygotes = {str(runner).encode() for runner in runners}
    groups = [f"@{runner}.".encode() for runner in runners]
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path("/proc", pid, "cmdline").read_bytes().split(b"\0")[:-1]
            member = Path("/proc", pid, "cgroup").read_bytes()
        except OSError:
            continue
        if (
            any(group in member for group in groups)
            or (b"--zygote" in args and args[-1] in zygotes)
            or any(MARK.encode() in arg for arg in args)
        ):
            found.append(int(pid))
    return {pid: described(pid) for pid in found}


def described(pid: int) -> str:
    """A process's command line, parent, state and pid namespace."""
    proc = Path("/proc", str(pid))
    try:
        argv = proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        status = dict(
            line.split(":\t", 1) for line in proc.joinpath("status").read_text().splitlines()
        )
        namespace = os.readlink(proc / "ns" / "pid")
    except OSError as exc:
        return f"gone while described ({exc.strerror})"
    return f"{argv.strip()!r} ppid={status.get('PPid')} state={status.get('State')} {namespace}"


def wait_gone(*runners: int, limit: float = 10) -> dict[int, str]:
    """Wait (``limit`` at most) until no process of the runners' is left; the survivors."""
    deadline = time.monotonic() + limit
    while (left := processes_of(*runners)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def effects(state: Path) -> Counter[str]:
    log = state / "runs" / RUN / "agents" / AGENT / "work" / "effects.log"
    return Counter(log.read_text().split()) if log.exists() else Counter()


@dataclass
class Trial:
    """One trial: its seed, what happened, what went wrong."""

    seed: int
    delay: float = 0.0
    killed_at: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: what ``interfere`` killed (sandboxed commands, MCP servers): steps may fail then
    interfered: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        states = ", ".join(f"{k}={v}" for k, v in self.killed_at.items())
        return f"seed {self.seed} (kill after {self.delay:.3f} s; steps then: {states})"


#: what a long-form trial does to the runner's sandboxes before the kill
Interference = Callable[["Trial", int, random.Random], None]


def operator(store: RunStore) -> bool:
    """Settle unknown steps: done if its effect is seen, else run again; whether any was."""
    seen = effects(store.state_dir)
    unknown = [k for k, v in store.steps(RUN).items() if v.state is StepState.UNKNOWN]
    for step_id in unknown:
        if seen[step_id]:
            decisions.mark_done(store, RUN, step_id, "chaos", "effect seen")
        else:
            decisions.approve(store, RUN, step_id, "chaos", "no effect seen")
    return bool(unknown)


def run_trial(
    base: Path,
    plan: Plan,
    seed: int,
    span: float,
    interfere: Interference | None = None,
) -> Trial:
    """Start, SIGKILL at a random point of ``span`` seconds, resume to the end; check.

    ``interfere(trial, runner_pid, rng)``, when given, runs (in this process) before
    the kill: the long form kills sandbox processes with it, naming what it killed in
    ``trial.interfered``; steps may then fail (and their dependents be skipped).
    """
    rng = random.Random(seed)
    trial = Trial(seed, rng.uniform(0, span))
    state = base / f"trial-{seed}"
    runners: list[int] = []
    try:
        _killed(trial, state, plan, runners, rng, interfere)
        before, seen_before = dict(trial.killed_at), effects(state)
        _resumed(trial, state, plan, runners)
        with_store(state, lambda store: check_finished(store, plan, trial, before, seen_before))
        left = wait_gone(*runners)
        if left:
            trial.problems.append(f"processes of runners {runners} left: {left}")
        groups = cgroups_of(*runners)
        if groups:
            names = [group.name for group in groups]
            trial.problems.append(f"cgroups of runners {runners} left: {names}")
    except Exception as exc:  # reported with the seed, like any other problem
        trial.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        if os.getuid() == 0:
            work_disk.detach(state / "runs" / RUN / "agents" / AGENT / "work")
        if not trial.problems:
            shutil.rmtree(state, ignore_errors=True)
    return trial


def _killed(
    trial: Trial,
    state: Path,
    plan: Plan,
    runners: list[int],
    rng: random.Random,
    interfere: Interference | None,
) -> None:
    """Start the run in a child, kill it after the trial's delay, check what it left."""
    runner = fork_driver(state, plan)
    runners.append(runner)
    if interfere is not None:
        interfere(trial, runner, rng)
    code = wait_child(runner, trial.delay)
    if code is None:
        code = kill(runner)
    if code not in (KILLED, DONE) and not (code == HALTED and trial.interfered):
        trial.problems.append(f"the first runner ended with {code}")
    survivors = wait_gone(runner)
    if survivors:
        trial.problems.append(f"sandbox processes outlived the runner: {survivors}")
    with_store(state, lambda store: check_killed(store, trial))


def _resumed(trial: Trial, state: Path, plan: Plan, runners: list[int]) -> None:
    """Resume the run in children until it is done, the operator settling unknown steps."""
    for attempt in range(4):
        # killed before the run was recorded: it is started again
        resumer = fork_driver(state, plan if not trial.killed_at and attempt == 0 else None)
        runners.append(resumer)
        code = wait_child(resumer)
        if code == DONE:
            return
        if code != HALTED:
            trial.problems.append(f"a resume ended with {code}")
            return
        if not with_store(state, operator):
            return  # failed (a step whose sandbox was killed): check_finished says if it may
    trial.problems.append("the run never finished")


def with_store(state: Path, use: Callable[[RunStore], T]) -> T:
    store = RunStore(state)
    try:
        return use(store)
    finally:
        store.close()


def check_killed(store: RunStore, trial: Trial) -> None:
    """Record the steps' states at the kill; the audit log must verify already."""
    if not any(r.id == RUN for r in store.runs()):
        return  # killed before the run was recorded: the resume finds nothing
    trial.killed_at = {k: str(v.state) for k, v in store.steps(RUN).items()}
    problems = store.audit.verify()
    if problems:
        trial.problems.append(f"audit log broken after the kill: {problems}")


#: the audit events that settle a step
FINAL = {"step.succeeded", "step.failed", "step.skipped", "operator.marked_done"}


def check_finished(
    store: RunStore, plan: Plan, trial: Trial, before: dict[str, str], seen_before: Counter[str]
) -> None:
    """Every step done once, its effect as often as it may be, the audit log whole.

    When ``interfere`` killed something, a step may have failed and its dependents been
    skipped; otherwise every step succeeded.
    """
    steps = store.steps(RUN)
    settled = {StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED}
    wanted = settled if trial.interfered else {StepState.SUCCEEDED}
    if any(record.state not in wanted for record in steps.values()):
        states = {k: str(v.state) for k, v in steps.items()}
        trial.problems.append(f"steps not as they should end: {states}")
    seen = effects(store.state_dir)
    unknown = {r.step_id or "" for r in store.audit.records(RUN, event="step.unknown")}
    for step in plan.steps:
        now = str(steps[step.id].state)
        trial.problems += _step_problems(
            store, step.id, step.idempotent, now, before, seen_before, seen, unknown
        )
    verified = store.audit.verify()
    if verified:
        trial.problems.append(f"audit log broken: {verified}")


def _step_problems(
    store: RunStore,
    step_id: str,
    idempotent: bool,
    now: str,
    before: dict[str, str],
    seen_before: Counter[str],
    seen: Counter[str],
    unknown: set[str],
) -> list[str]:
    was = before.get(step_id, "pending")
    problems = []
    if (now == "succeeded" and seen[step_id] == 0) or (not idempotent and seen[step_id] > 1):
        problems.append(f"{step_id}: {now}, effect {seen[step_id]} times")
    if now == "skipped" and seen[step_id]:
        problems.append(f"{step_id}: skipped, yet took effect")
    if was == "succeeded" and seen[step_id] != seen_before[step_id]:
        problems.append(f"{step_id}: finished before the kill, yet ran again")
    if was == "pending" and seen_before[step_id]:
        problems.append(f"{step_id}: took effect before its start was journalled")
    if (step_id in unknown) != (was == "running" and not idempotent):
        problems.append(f"{step_id}: {was} at the kill, unknown after: {step_id in unknown}")
    finals = [r for r in store.audit.records(RUN, step_id) if r.event in FINAL]
    if len(finals) != 1:
        problems.append(f"{step_id}: settled {len(finals)} times ({[r.event for r in finals]})")
    return problems

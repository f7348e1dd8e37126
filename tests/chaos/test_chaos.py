"""SIGKILL a run at random points of its life, resume it, check nothing was lost (short form).

``bench/chaos.py`` is the long form. A failing trial prints its seed; replay it with
``LUMINAGUARD_CHAOS_SEED=SEED pytest tests/chaos -k trials`` (trial ``i`` uses seed
``SEED + i``) or ``python bench/chaos.py --seed SEED --trials 1``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.compiler.plan import Plan
from luminaguard.hypervisor.linux import cgroups
from luminaguard.hypervisor.linux.cgroups import CgroupLimits
from luminaguard.scheduler.lease import LeaseHeld
from luminaguard.scheduler.store import RunStore
from tests.chaos import harness

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("sandbox")]

TRIALS = 50
#: kill delays are drawn from [0, SPAN) seconds: a run takes about 0.3 s here
SPAN = 0.45


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return harness.compile_plan(tmp_path_factory.mktemp("chaos-plan"))


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(plan: Plan, tmp_path: Path) -> None:
    first = int(os.environ.get("LUMINAGUARD_CHAOS_SEED", random.SystemRandom().randrange(10**6)))
    failed = []
    for seed in range(first, first + TRIALS):
        trial = harness.run_trial(tmp_path, plan, seed, SPAN)
        if trial.problems:
            failed.append(f"{trial}: {trial.problems}")
    assert not failed, (
        f"{len(failed)} of {TRIALS} trials failed (first seed {first}; replay with"
        f" LUMINAGUARD_CHAOS_SEED={first} or python bench/chaos.py --seed SEED --trials 1):\n"
        + "\n".join(failed)
    )


def test_a_second_driver_is_refused(plan: Plan, tmp_path: Path) -> None:
    """While one process holds a run's lease, another driving it gets ``LeaseHeld``."""
    first = harness.fork_driver(tmp_path, plan)
    assert harness.wait_child(first) == harness.DONE
    store = RunStore(tmp_path)
    try:
        with store.lease(harness.RUN):  # this process drives the run now
            second = harness.fork_driver(tmp_path, None)
            assert harness.wait_child(second) == harness.HELD
            with pytest.raises(LeaseHeld):
                RunStore(tmp_path).lease(harness.RUN)
        assert harness.wait_child(harness.fork_driver(tmp_path, None)) == harness.DONE
    finally:
        store.close()


@pytest.fixture
def own_cgroup() -> Iterator[list[CgroupLimits]]:
    made: list[CgroupLimits] = []
    yield made
    for limits in made:
        limits.remove()


def test_the_cgroups_of_a_killed_runner_are_swept_on_resume(
    plan: Plan, tmp_path: Path, own_cgroup: list[CgroupLimits]
) -> None:
    """A runner killed by SIGKILL leaves its sandboxes' cgroups; resume removes them.

    Before the fix nothing removed them: ``/sys/fs/cgroup/*/luminaguard`` held
    thousands of them on this machine. A live process's cgroup, empty or not, stays.
    """
    if not _parents():
        pytest.skip("no writable cgroups here")
    live = CgroupLimits(f"{harness.AGENT}-live", 64 << 20, 16)
    own_cgroup.append(live)
    live.create()  # this process's, empty: a sandbox may be about to join it
    before = set(_agent_cgroups())
    runner = harness.fork_driver(tmp_path, plan)
    deadline = time.monotonic() + 20
    while not (set(_agent_cgroups()) - before) and not harness.ended(runner, 0.005):
        assert time.monotonic() < deadline, "the runner never made a cgroup"
    assert harness.kill(runner) == harness.KILLED
    assert not harness.wait_gone(runner)
    left = set(_agent_cgroups()) - before
    assert left, "the killed runner left no cgroup (it was killed between commands)"
    assert harness.wait_child(harness.fork_driver(tmp_path, None)) in (harness.DONE, harness.HALTED)
    assert not left & set(_agent_cgroups())
    assert all(d.exists() for d in live.dirs)


def test_a_reused_pid_does_not_keep_a_cgroup(own_cgroup: list[CgroupLimits]) -> None:
    """A mark naming a live pid with another start time is a dead owner's: swept.

    One made in another PID namespace is not judged: its pid means nothing here.
    """
    if not cgroups.parents():
        pytest.skip("no writable cgroups here")
    namespace = os.stat("/proc/self/ns/pid").st_ino
    stale = CgroupLimits(f"{harness.AGENT}-stale@{os.getpid()}.1.{namespace}", 64 << 20, 16)
    foreign = CgroupLimits(f"{harness.AGENT}-foreign@{os.getpid()}.1.{namespace + 1}", 1 << 20, 1)
    own_cgroup += [stale, foreign]
    stale.create()
    foreign.create()
    assert stale.dirs and all(d.exists() for d in stale.dirs)
    swept = set(cgroups.sweep())
    assert set(stale.dirs) <= swept
    assert not any(d.exists() for d in stale.dirs)
    assert all(d.exists() for d in foreign.dirs)


def _parents() -> list[Path]:
    """Where the sandboxes' cgroups are (written out: the test predates ``cgroups.parents``)."""
    kind = cgroups.hierarchy()
    if kind == "v2":
        return [cgroups.CGROUP_ROOT / cgroups.PARENT]
    if kind == "v1":
        return [cgroups.CGROUP_ROOT / c / cgroups.PARENT for c in ("memory", "pids")]
    return []


def _agent_cgroups() -> list[Path]:
    found: list[Path] = []
    for parent in _parents():
        if parent.is_dir():
            found += [d for d in parent.iterdir() if d.name.startswith(f"{harness.AGENT}-")]
    return found

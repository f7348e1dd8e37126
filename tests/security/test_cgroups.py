"""A sandbox holds no more CPU than its agent's ``limits.cpus`` (issue #10, 8).

Runs on the namespace sandbox and on gVisor. CPU time is read on the host, from the
sandbox's cgroup: gVisor's own clock counts a throttled task as running.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from luminaguard.hypervisor.linux.cgroups import CgroupLimits, cpu_quota
from tests.security.conftest import Run

#: inside the sandbox: two busy processes for 3 s of wall time, each saying it ran
BURN = """
import os, time
start = time.monotonic()
for _ in range(2):
    if os.fork() == 0:
        while time.monotonic() - start < 3:
            pass
        print("burnt", flush=True)
        os._exit(0)
os.wait()
os.wait()
"""


@pytest.mark.slow
def test_a_busy_sandbox_gets_no_more_than_its_cpus(
    tmp_path: Path, run_in_sandbox: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: two busy loops in a sandbox whose agent has ``cpus: 0.5``.

    Before the fix there was no CPU quota: the loops took what the machine had (1.2 to
    1.7 of the 2 cores of a loaded machine here) until the step's timeout. Fixed by
    5ae557a "sandbox: a CPU quota from limits.cpus (default 1 core; ...)". The bound is
    an upper one: a loaded machine gives less, never more (down to a few hundredths of
    a core here, so the loops' running is shown by what they print, not by their share).
    """
    if not cpu_quota():
        pytest.skip("no writable cpu cgroup controller here")
    used: list[float] = []
    remove, try_remove = CgroupLimits.remove, CgroupLimits.try_remove

    def read(self: CgroupLimits) -> None:  # the CPU time, read before the cgroup goes
        seconds = self.cpu_seconds() if self.dirs else None
        if seconds is not None:
            used.append(seconds)

    def measured(self: CgroupLimits) -> None:
        read(self)
        remove(self)

    def measured_now(self: CgroupLimits) -> bool:
        read(self)
        return try_remove(self)

    monkeypatch.setattr(CgroupLimits, "remove", measured)
    monkeypatch.setattr(CgroupLimits, "try_remove", measured_now)
    start = time.monotonic()
    result = run_in_sandbox(tmp_path, f"python3 -c '{BURN}'", cpus=0.5)
    wall = time.monotonic() - start
    assert result.ok, result.stderr
    assert used, "no CPU accounting for the sandbox's cgroup"
    cores = sum(used) / wall
    assert cores <= 0.5 * 1.1, f"{cores:.2f} cores used with a quota of 0.5"
    assert result.stdout.split() == ["burnt", "burnt"] and sum(used) > 0  # the loops did run

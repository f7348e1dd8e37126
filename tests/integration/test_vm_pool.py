"""Warm pools of snapshot clones on the real qemu backend."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import PoolConfig, SandboxSpec
from luminaguard.hypervisor.vm.image.build import GuestImage
from luminaguard.hypervisor.vm.machine import snapshot_key
from luminaguard.hypervisor.vm.qemu.backend import QemuBackend
from tests.conftest import ROOT

pytestmark = pytest.mark.vm

BACKEND = QemuBackend()
if not BACKEND.availability().usable:
    pytest.skip(
        f"qemu backend unavailable: {BACKEND.availability().detail}", allow_module_level=True
    )

POOL = PoolConfig("test-pool", warm=2, maximum=4)
SPEC = SandboxSpec(name="t", workdir=Path("/nonexistent"), pool="test-pool")


def test_acquisitions_come_from_the_warm_pool_and_clones_differ() -> None:
    async def go() -> dict[str, object]:
        backend = QemuBackend()
        backend.configure_pools([POOL])
        pool = await backend.pool(POOL.name)
        deadline = time.monotonic() + 60
        while pool.status()["warm"] < 2:  # the pool fills in the background
            assert time.monotonic() < deadline, pool.status()
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        first, second = await backend.create(SPEC), await backend.create(SPEC)
        acquired = time.perf_counter() - started
        probe = "cat /etc/machine-id; head -c 16 /dev/urandom | od -An -tx1"
        ids = [(await backend.exec(vm, probe, 10)).stdout for vm in (first, second)]
        status_busy = pool.status()
        while pool.status()["warm"] < 2:  # refills to warm again
            assert time.monotonic() < deadline + 60, pool.status()
            await asyncio.sleep(0.05)
        refilled = pool.status()
        for vm in (first, second):
            await backend.destroy(vm)
        after = pool.status()
        await backend.aclose()
        return {
            "acquired": acquired,
            "ids": ids,
            "busy": status_busy,
            "refilled": refilled,
            "after": after,
        }

    result = asyncio.run(go())
    assert (
        result["acquired"] < 1.0
    )  # two warm clones handed out, no boot (a cold boot takes seconds)
    first, second = result["ids"]  # type: ignore[misc]
    assert first.split()[0] != second.split()[0]  # machine ids
    assert first.split()[1:] != second.split()[1:]  # random state
    assert result["busy"]["busy"] == 2  # type: ignore[index]
    assert result["refilled"]["warm"] == 2 and result["after"]["busy"] == 0  # type: ignore[index]
    assert result["refilled"]["restore_p50_ms"] is not None  # type: ignore[index]


def test_a_changed_image_gets_a_new_snapshot() -> None:
    image = GuestImage(Path("k"), Path("i"), "aaaa")
    changed = GuestImage(Path("k"), Path("i"), "bbbb")
    assert snapshot_key(image, 256, 1) != snapshot_key(changed, 256, 1)
    assert snapshot_key(image, 256, 1) != snapshot_key(image, 512, 1)
    assert snapshot_key(image, 256, 1) != snapshot_key(image, 256, 2)
    assert snapshot_key(image, 256, 1) != snapshot_key(image, 256, 1, vmm="fc")
    same = GuestImage(Path("x"), Path("y"), "aaaa")
    assert snapshot_key(image, 256, 1) == snapshot_key(same, 256, 1)


CHILD = """
import asyncio, sys
from pathlib import Path
from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.vm.qemu.backend import QemuBackend
async def main():
    backend = QemuBackend()
    vm = await backend.create(SandboxSpec(name="orphan", workdir=Path("/nonexistent")))
    print(vm.process.pid, flush=True)
    await asyncio.sleep(300)
asyncio.run(main())
"""


def test_killing_the_runner_leaves_no_qemu_behind() -> None:
    runner = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE)
    assert runner.stdout is not None
    qemu = int(runner.stdout.readline())
    assert Path(f"/proc/{qemu}").exists()
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{qemu}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    stat = Path(f"/proc/{qemu}/stat")
    state = stat.read_text().split()[2] if stat.exists() else "gone"
    assert state in ("gone", "Z"), f"QEMU {qemu} outlived its runner (state {state})"


def test_a_timed_out_pool_vm_is_replaced_without_leaking_pool_slots() -> None:
    spec = SandboxSpec(name="t", workdir=Path("/nonexistent"), pool="replace-pool")

    async def go() -> tuple[bool, str, dict[str, object], bool]:
        backend = QemuBackend()
        backend.configure_pools([PoolConfig("replace-pool", warm=1, maximum=2)])
        vm = await backend.create(spec)
        first_folder = vm.folder
        late = await backend.exec(vm, "sleep 30", 1)  # costs the VM
        again = await backend.exec(vm, "echo ok", 10)  # a fresh clone behind the same handle
        await backend.destroy(vm)
        pool = backend.pools["replace-pool"]
        status = pool.status()
        await backend.aclose()
        return late.timed_out, again.stdout, status, first_folder.exists()

    timed_out, stdout, status, old_folder_left = asyncio.run(go())
    assert timed_out and stdout == "ok\n"
    assert status["busy"] == 0  # both the killed clone and its replacement left the books
    assert not old_folder_left

"""A cold boot that timed out is tried again; a clone that failed to restore is replaced.

The Machine here is a fake (no VMM): it fails as told, then succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError, SandboxSpec
from luminaguard.hypervisor.vm.backend import VmBackend
from luminaguard.hypervisor.vm.image.build import GuestImage
from luminaguard.hypervisor.vm.machine import BOOT_ATTEMPTS, Snapshot, Vm
from luminaguard.hypervisor.vm.pool import RESTORE_ATTEMPTS, VmPool
from luminaguard.hypervisor.vm.waiting import BootTimeout

IMAGE = GuestImage(Path("vmlinux"), Path("initrd"), "key")
DIED = "the VM stopped before its guest agent answered: Kernel panic"
TIMED_OUT = "the guest agent did not answer in time"


class FailingMachine:
    """Boots and restores that raise the given errors, in order, then succeed."""

    def __init__(self, folder: Path, *failures: BackendError) -> None:
        self.folder = folder
        self.failures = list(failures)
        self.boots = 0
        self.restores = 0

    def _next(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    async def boot(self, vm: Vm, image: GuestImage) -> None:
        self.boots += 1
        self._next()

    async def snapshot(self, image: GuestImage, memory_mib: int, vcpus: int) -> Snapshot:
        ram, state = self.folder / "ram", self.folder / "state"
        return Snapshot(image, memory_mib, vcpus, ram, state)

    async def restore(self, snapshot: Snapshot, spec: SandboxSpec) -> Vm:
        self.restores += 1
        self._next()
        return Vm(spec, self.folder / f"clone-{self.restores}")


@pytest.fixture(autouse=True)
def folders_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The VM folders the backend makes go under the test's folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def pool(machine: FailingMachine, warm: int = 0) -> VmPool:
    snapshot = asyncio.run(machine.snapshot(IMAGE, 256, 1))
    return VmPool("p", snapshot, warm, 4, machine.restore)


def test_a_clone_that_fails_to_restore_is_replaced_not_the_acquisition_failed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    machine = FailingMachine(tmp_path, BackendError(DIED))
    spec = SandboxSpec(name="agent", workdir=tmp_path, pool="p")
    clones = pool(machine)
    with caplog.at_level(logging.WARNING, logger="luminaguard.hypervisor.vm.pool"):
        vm = asyncio.run(clones.acquire(spec))
    assert machine.restores == 2
    assert clones.busy == [vm] and vm.spec is spec and vm.pool is clones
    assert f"try 1 of {RESTORE_ATTEMPTS}" in caplog.text and "Kernel panic" in caplog.text


def test_replacing_clones_is_bounded(tmp_path: Path) -> None:
    machine = FailingMachine(tmp_path, *[BackendError(DIED)] * (RESTORE_ATTEMPTS + 1))
    clones = pool(machine)
    with pytest.raises(BackendError, match="Kernel panic"):
        asyncio.run(clones.acquire(SandboxSpec(name="agent", workdir=tmp_path, pool="p")))
    assert machine.restores == RESTORE_ATTEMPTS
    assert clones.busy == [] and clones.status()["refilling"] == 0


def test_a_refill_replaces_a_clone_that_failed_to_restore(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    machine = FailingMachine(tmp_path, BackendError(TIMED_OUT))
    clones = pool(machine, warm=1)

    async def refilled() -> None:
        clones.refill()
        await asyncio.gather(*clones._tasks)

    with caplog.at_level(logging.WARNING, logger="luminaguard.hypervisor.vm.pool"):
        asyncio.run(refilled())
    assert machine.restores == 2 and len(clones.ready) == 1
    assert TIMED_OUT in caplog.text


def test_a_refill_that_keeps_failing_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    machine = FailingMachine(tmp_path, *[BackendError(DIED)] * RESTORE_ATTEMPTS)
    clones = pool(machine, warm=1)

    async def refilled() -> None:
        clones.refill()
        await asyncio.gather(*clones._tasks)

    with caplog.at_level(logging.WARNING, logger="luminaguard.hypervisor.vm.pool"):
        asyncio.run(refilled())
    assert clones.ready == [] and clones.status()["refilling"] == 0
    assert "pool 'p' could not refill" in caplog.text


def backend(machine: FailingMachine) -> VmBackend:
    found = VmBackend(machine)
    found._images[None] = IMAGE
    return found


def test_a_cold_boot_that_timed_out_is_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    machine = FailingMachine(tmp_path, BootTimeout(TIMED_OUT))
    vms = backend(machine)
    with caplog.at_level(logging.WARNING, logger="luminaguard.hypervisor.vm.backend"):
        vm = asyncio.run(vms.create(SandboxSpec(name="cold", workdir=tmp_path)))
    assert machine.boots == 2 and vm.folder.parent == tmp_path
    assert f"cold boot of a VM for 'cold' failed (try 1 of {BOOT_ATTEMPTS})" in caplog.text
    assert TIMED_OUT in caplog.text


def test_cold_boot_tries_are_bounded(tmp_path: Path) -> None:
    machine = FailingMachine(tmp_path, *[BootTimeout(TIMED_OUT)] * (BOOT_ATTEMPTS + 1))
    with pytest.raises(BootTimeout):
        asyncio.run(backend(machine).create(SandboxSpec(name="cold", workdir=tmp_path)))
    assert machine.boots == BOOT_ATTEMPTS


def test_a_vm_that_died_booting_is_not_booted_again(tmp_path: Path) -> None:
    machine = FailingMachine(tmp_path, BackendError(DIED))
    with pytest.raises(BackendError, match="Kernel panic"):
        asyncio.run(backend(machine).create(SandboxSpec(name="cold", workdir=tmp_path)))
    assert machine.boots == 1

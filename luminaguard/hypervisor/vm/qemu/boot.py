"""A cold boot of QEMU microvm: launch, wait for the agent's socket, say hello."""

from __future__ import annotations

import time

from luminaguard.hypervisor.vm.image.build import GuestImage
from luminaguard.hypervisor.vm.machine import BOOT_TIMEOUT, Vm
from luminaguard.hypervisor.vm.qemu.command import command, launch
from luminaguard.hypervisor.vm.waiting import connect


async def cold_boot(vm: Vm, image: GuestImage) -> None:
    """Boot the VM from its kernel and connect to its agent; on failure QEMU is killed."""
    vm.socket.unlink(missing_ok=True)
    shape = vm.spec.shape
    vm.process = launch(command(vm, image, shape.memory_mib, shape.vcpus), vm.folder)
    try:
        vm.agent = await connect(vm.socket, vm.process, time.monotonic() + BOOT_TIMEOUT)
    except BaseException:
        vm.kill()
        raise

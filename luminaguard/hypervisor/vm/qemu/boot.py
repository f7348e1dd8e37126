"""A cold boot of QEMU microvm: launch, wait for the agent's socket, say hello."""

from __future__ import annotations

import time

from luminaguard.hypervisor.vm.image.build import GuestImage
from luminaguard.hypervisor.vm.machine import BOOT_TIMEOUT, Vm, connect, wait_for_file
from luminaguard.hypervisor.vm.qemu.command import command, launch


async def cold_boot(vm: Vm, image: GuestImage) -> None:
    """Boot the VM from its kernel and connect to its agent."""
    vm.socket.unlink(missing_ok=True)
    shape = vm.spec.shape
    vm.process = launch(command(vm, image, shape.memory_mib, shape.vcpus), vm.folder)
    deadline = time.monotonic() + BOOT_TIMEOUT
    await wait_for_file(vm.socket, vm.process, deadline)
    vm.agent = await connect(vm.socket, deadline)

"""The ``qemu`` backend: QEMU microvm as the Machine of a ``VmBackend``.

``-accel kvm`` where hardware virtualization exists, software emulation (TCG)
otherwise: on the project's machines /dev/kvm is PVM, which stock kernels cannot use
(see ``luminaguard doctor``). The guest agent speaks over virtio-serial; snapshots are
copy-on-write memory files on /dev/shm with ``x-ignore-shared`` (see ``snapshot``).
VMs die with the runner (QEMU gets PDEATHSIG).
"""

from __future__ import annotations

from luminaguard.hypervisor.base import Availability, SandboxSpec
from luminaguard.hypervisor.vm.backend import VmBackend
from luminaguard.hypervisor.vm.image.build import GuestImage, missing_tools
from luminaguard.hypervisor.vm.kvm import hardware_kvm
from luminaguard.hypervisor.vm.machine import Snapshot, Vm
from luminaguard.hypervisor.vm.qemu.boot import cold_boot
from luminaguard.hypervisor.vm.qemu.restore import restore
from luminaguard.hypervisor.vm.qemu.snapshot import take


class QemuMachine:
    """QEMU microvm: cold boots, snapshots and clone restores."""

    async def boot(self, vm: Vm, image: GuestImage) -> None:
        """Boot ``vm`` cold and connect to its agent over virtio-serial."""
        await cold_boot(vm, image)

    async def snapshot(self, image: GuestImage, memory_mib: int, vcpus: int) -> Snapshot:
        """The snapshot of a freshly booted guest (kept while /dev/shm holds it)."""
        return await take(image, memory_mib, vcpus)

    async def restore(self, snapshot: Snapshot, spec: SandboxSpec) -> Vm:
        """A copy-on-write clone of the snapshot, reseeded."""
        return await restore(snapshot, spec)


class QemuBackend(VmBackend):
    """QEMU microvm micro-VMs."""

    name = "qemu"
    egress = True
    folders = True

    def __init__(self) -> None:
        super().__init__(QemuMachine())

    def availability(self) -> Availability:
        """Usable when QEMU and the image tools are installed."""
        missing = missing_tools()
        if missing:
            return Availability(
                False, f"missing {', '.join(missing)} (run scripts/install-vm-deps.sh)"
            )
        mode = (
            "hardware KVM" if hardware_kvm() else "software emulation (TCG): no hardware KVM here"
        )
        return Availability(True, f"QEMU microvm, {mode}; warm pools of snapshot clones")

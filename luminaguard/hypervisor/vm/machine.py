"""One micro-VM and the machine that runs it: what QEMU and Firecracker share.

A ``Machine`` boots a VM, snapshots one and restores clones; a ``Vm`` is one running
VM with its folder and its guest agent's connection. Waiting for a VM to come up is
in ``waiting``.
"""

from __future__ import annotations

import ctypes
import hashlib
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.vm.folder_disks import FolderDisk
from luminaguard.hypervisor.vm.guest.client import GuestAgent
from luminaguard.hypervisor.vm.image.build import GuestImage

BOOT_TIMEOUT = 60.0
BOOT_ATTEMPTS = 2  # a cold boot that timed out (a loaded machine) is tried once more
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child before exec: QEMU gets SIGKILL when the runner dies (no orphan VMs)."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class Vm:
    """One running micro-VM, its files, and the connection to its guest agent."""

    spec: SandboxSpec
    folder: Path
    process: subprocess.Popen[bytes] | None = None
    agent: GuestAgent | None = None
    pool: Any = None  # the VmPool it came from, if any
    disks: list[FolderDisk] = field(default_factory=list)  # host folders, read-only

    @property
    def socket(self) -> Path:
        """The host end of the guest agent's virtio-serial port."""
        return self.folder / "agent.sock"

    @property
    def qmp(self) -> Path:
        """QEMU's QMP socket."""
        return self.folder / "qmp.sock"

    def kill(self) -> None:
        """Kill QEMU (the guest with it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class Snapshot:
    """A booted guest's memory (on /dev/shm) and device state, for one image and size."""

    image: GuestImage
    memory_mib: int
    vcpus: int
    ram: Path
    state: Path

    @property
    def key(self) -> str:
        """Changes with the image, the memory size and the vCPUs."""
        return self.ram.stem


def snapshot_key(image: GuestImage, memory_mib: int, vcpus: int, vmm: str = "qemu") -> str:
    """The name a snapshot of ``image`` with this memory and vCPUs is stored under.

    It changes with the VMM too: a QEMU snapshot cannot be loaded by Firecracker. (QEMU's
    names predate that and are kept, so its snapshots on /dev/shm stay valid.)
    """
    named = f"{image.key}/{memory_mib}/{vcpus}"
    if vmm != "qemu":
        named = f"{vmm}/{named}"
    return "luminaguard-" + hashlib.sha256(named.encode()).hexdigest()[:16]


class Machine(Protocol):
    """One virtual machine monitor: boots a VM, snapshots one, restores clones."""

    async def boot(self, vm: Vm, image: GuestImage) -> None:
        """Boot ``vm`` cold from ``image``; connect to its guest agent.

        On failure the VM is killed (its folder may be booted again); a guest that did
        not answer in time while its VMM ran is a ``BootTimeout``.
        """
        ...

    async def snapshot(self, image: GuestImage, memory_mib: int, vcpus: int) -> Snapshot:
        """The snapshot of a freshly booted guest of ``image`` (taken once, then reused)."""
        ...

    async def restore(self, snapshot: Snapshot, spec: SandboxSpec) -> Vm:
        """A new clone of ``snapshot``, reseeded, its agent connected; BackendError if not."""
        ...

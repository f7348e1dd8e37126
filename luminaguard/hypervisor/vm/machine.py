"""One micro-VM and the machine that runs it: what QEMU and Firecracker share.

A ``Machine`` boots a VM, snapshots one and restores clones; a ``Vm`` is one running
VM with its folder and its guest agent's connection.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from luminaguard.hostile_files import Unreadable, read_beneath
from luminaguard.hypervisor.base import BackendError, SandboxSpec
from luminaguard.hypervisor.vm.folder_disks import FolderDisk
from luminaguard.hypervisor.vm.guest.client import GuestAgent, GuestError
from luminaguard.hypervisor.vm.image.build import GuestImage

BOOT_TIMEOUT = 60.0
LOG_TAIL = 64 << 10
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


def _lines(path: Path) -> list[str]:
    """The last lines of a log the guest writes (its console): at most 64 KiB of them."""
    try:
        return (
            read_beneath(path.parent, path.name, LOG_TAIL, tail=True)
            .decode(errors="replace")
            .splitlines()
        )
    except Unreadable:
        return []


def guest_died(folder: Path) -> BackendError:
    """The error for a VM that stopped before its agent answered, quoting the VMM and guest.

    The VMM's own messages are in ``qemu.log`` or ``firecracker.log``; the guest's in
    ``console.log``.
    """
    console = _lines(folder / "console.log")
    telling = [line for line in console if re.search(r"panic|failed|error", line, re.I)]
    vmm = [line for name in ("qemu.log", "firecracker.log") for line in _lines(folder / name)]
    said = vmm + [line.split("] ", 1)[-1] for line in telling]
    why = "; ".join(said[:3]) or (
        "no message from the VMM or the guest (a reset this early usually means too little "
        "memory for the kernel and its root)"
    )
    return BackendError(
        f"the VM stopped before its guest agent answered: {why} (see {folder}/console.log)"
    )


async def wait_for_file(path: Path, process: subprocess.Popen[bytes], deadline: float) -> None:
    """Until QEMU has created ``path``; BackendError if it died or took too long."""
    while not path.exists():
        if process.poll() is not None:
            raise guest_died(path.parent)
        if time.monotonic() > deadline:
            raise BackendError(f"QEMU did not start (see {path.parent / 'console.log'})")
        await asyncio.sleep(0.002)


async def connect(sock: Path, deadline: float) -> GuestAgent:
    """The guest agent's connection, once it answers hello.

    QEMU drops a connection made before the guest opens its port, so this retries;
    once QEMU has exited (its socket gone), the console says why.
    """
    while True:
        try:
            reader, writer = await asyncio.open_unix_connection(str(sock))
        except OSError:
            raise guest_died(sock.parent) from None
        agent = GuestAgent(reader, writer)
        try:
            await agent.request("hello", wait=0.5)
            return agent
        except GuestError:
            await agent.aclose()
            if time.monotonic() > deadline:
                raise BackendError("the guest agent did not answer in time") from None


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


def snapshot_key(image: GuestImage, memory_mib: int, vcpus: int) -> str:
    """The name a snapshot of ``image`` with this memory and vCPUs is stored under."""
    named = f"{image.key}/{memory_mib}/{vcpus}".encode()
    return "luminaguard-" + hashlib.sha256(named).hexdigest()[:16]


class Machine(Protocol):
    """One virtual machine monitor: boots a VM, snapshots one, restores clones."""

    async def boot(self, vm: Vm, image: GuestImage) -> None:
        """Boot ``vm`` cold from ``image``; connect to its guest agent."""
        ...

    async def snapshot(self, image: GuestImage, memory_mib: int, vcpus: int) -> Snapshot:
        """The snapshot of a freshly booted guest of ``image`` (taken once, then reused)."""
        ...

    async def restore(self, snapshot: Snapshot, spec: SandboxSpec) -> Vm:
        """A new clone of ``snapshot``, reseeded, its agent connected."""
        ...

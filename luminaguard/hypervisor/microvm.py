"""Launching one QEMU microvm and reaching its guest agent: shared by boots, snapshots, clones."""

from __future__ import annotations

import asyncio
import ctypes
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luminaguard.hypervisor import egress
from luminaguard.hypervisor.base import BackendError, SandboxSpec
from luminaguard.hypervisor.folder_disks import FolderDisk
from luminaguard.hypervisor.guest_files import Unreadable, read_beneath
from luminaguard.hypervisor.guest_image import GuestImage
from luminaguard.hypervisor.registry_kvm import hardware_kvm
from luminaguard.transport.base import TransportError
from luminaguard.transport.guest_agent import GuestAgent

BOOT_TIMEOUT = 60.0
LOG_TAIL = 64 << 10
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child before exec: QEMU gets SIGKILL when the runner dies (no orphan VMs)."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def tsc_khz() -> int:
    """The host's TSC in kHz: TCG guests hang calibrating without it (shared notes)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return int(float(line.split(":")[1]) * 1000)
    return 2_000_000


def accelerator() -> list[str]:
    """KVM on hardware virtualization, else TCG with its translation cache capped."""
    if hardware_kvm():
        return ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
    return ["-accel", "tcg,tb-size=32"]


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


def command(
    vm: Vm,
    image: GuestImage,
    memory_mib: int,
    vcpus: int,
    ram: Path | None = None,
    share: bool = False,
    incoming: bool = False,
) -> list[str]:
    """QEMU's command line; ``ram`` backs guest memory with a file (snapshots, clones)."""
    machine = "microvm,pit=on,pic=on,rtc=on" + (",memory-backend=ram" if ram else "")
    argv = [
        "qemu-system-x86_64", "-M", machine, *accelerator(),
        "-m", f"{memory_mib}M", "-smp", str(vcpus),
        "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
        "-serial", f"file:{vm.folder / 'console.log'}",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        # PYTHONHASHSEED reaches init's environment: Python as PID 1 starts before the
        # kernel has entropy and cannot seed its hash randomization otherwise
        "-append",
        f"console=ttyS0 reboot=t panic=-1 quiet tsc_early_khz={tsc_khz()} PYTHONHASHSEED=0",
        "-device", "virtio-serial-device",
        "-chardev", f"socket,id=agent,path={vm.socket},server=on,wait=off",
        "-device", "virtserialport,chardev=agent,name=luminaguard",
        "-qmp", f"unix:{vm.qmp},server=on,wait=off",
    ]  # fmt: skip
    if vm.spec.egress:  # the allow-list: a restricted network with one relay per host:port
        argv += egress.qemu_args(vm.spec.egress)
        argv[argv.index("-append") + 1] += egress.kernel_args(vm.spec.egress)
    if image.disk is not None:  # the recipe's tools disk, read-only, mounted at /opt
        argv += _drive(image.disk, "tools", "lgtools")
        argv[argv.index("-append") + 1] += " LUMINAGUARD_DISK=1"
    for index, disk in enumerate(vm.disks):  # host folders, packed, read-only
        argv += _drive(disk.image, f"mount{index}", FolderDisk.serial(index))
    if vm.disks:
        targets = ";".join(disk.target for disk in vm.disks)
        argv[argv.index("-append") + 1] += f" LUMINAGUARD_MOUNTS={targets}"
    if ram is not None:
        share_flag = "on" if share else "off"  # off: each clone maps the file copy-on-write
        argv += [
            "-object",
            f"memory-backend-file,id=ram,size={memory_mib}M,mem-path={ram},share={share_flag}",
        ]
    if incoming:
        argv += ["-incoming", "defer"]
    return argv


def _drive(image: Path, name: str, serial: str) -> list[str]:
    return [
        "-drive", f"file={image},format=raw,if=none,id={name},readonly=on",
        "-device", f"virtio-blk-device,drive={name},serial={serial}",
    ]  # fmt: skip


def launch(argv: list[str], folder: Path) -> subprocess.Popen[bytes]:
    """Start QEMU, tied to this process's life; its own messages go to ``folder/qemu.log``."""
    with (folder / "qemu.log").open("ab") as log:
        return subprocess.Popen(
            argv, preexec_fn=die_with_parent, stdin=subprocess.DEVNULL, stderr=log
        )


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
        except TransportError:
            await agent.aclose()
            if time.monotonic() > deadline:
                raise BackendError("the guest agent did not answer in time") from None


async def cold_boot(vm: Vm, image: GuestImage) -> None:
    """Boot the VM from its kernel and connect to its agent."""
    vm.socket.unlink(missing_ok=True)
    vm.process = launch(command(vm, image, vm.spec.vm_memory_mib, vm.spec.vcpus), vm.folder)
    deadline = time.monotonic() + BOOT_TIMEOUT
    await wait_for_file(vm.socket, vm.process, deadline)
    vm.agent = await connect(vm.socket, deadline)

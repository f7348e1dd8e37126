"""QEMU microvm's command line, and launching it tied to the runner's life."""

from __future__ import annotations

import subprocess
from pathlib import Path

from luminaguard.hypervisor.vm.folder_disks import FolderDisk
from luminaguard.hypervisor.vm.image.build import GuestImage
from luminaguard.hypervisor.vm.kvm import hardware_kvm
from luminaguard.hypervisor.vm.machine import Vm, die_with_parent
from luminaguard.hypervisor.vm.qemu import egress


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


def launch(
    argv: list[str], folder: Path, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """Start QEMU, tied to this process's life; its own messages go to ``folder/qemu.log``.

    ``pass_fds`` are open files QEMU inherits (a snapshot's state, read-only); no other.
    """
    with (folder / "qemu.log").open("ab") as log:
        return subprocess.Popen(
            argv,
            preexec_fn=die_with_parent,
            stdin=subprocess.DEVNULL,
            stderr=log,
            pass_fds=pass_fds,
        )

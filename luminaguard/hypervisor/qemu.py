"""The ``qemu`` backend: one QEMU microvm per agent, driven through the guest agent.

``-accel kvm`` where hardware virtualization exists, software emulation (TCG)
otherwise: on the project's machines /dev/kvm is PVM, which stock kernels cannot use
(see ``luminaguard doctor``). The guest has no network device, a read-only root and
tmpfs at /work and /tmp; nothing of the host is shared with it. Commands and MCP
servers run through the guest agent over virtio-serial. A command past its timeout
costs its VM: the VM is killed and the next command boots a fresh one. VMs die with
the runner (the QEMU process gets PDEATHSIG). This version boots every VM cold; the
warm snapshot pool is still to come.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from luminaguard.hypervisor.base import (
    Availability,
    BackendError,
    ExecResult,
    SandboxHandle,
    SandboxProcess,
    SandboxSpec,
)
from luminaguard.hypervisor.guest_image import GuestImage, build, missing_tools
from luminaguard.hypervisor.registry_kvm import hardware_kvm
from luminaguard.transport.base import TransportError
from luminaguard.transport.guest_agent import GuestAgent

BOOT_TIMEOUT = 60.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _tsc_khz() -> int:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return int(float(line.split(":")[1]) * 1000)
    return 2_000_000


def accelerator() -> list[str]:
    """QEMU's accelerator arguments: KVM on hardware virtualization, else TCG."""
    if hardware_kvm():
        return ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
    return ["-accel", "tcg"]


@dataclass
class Vm:
    """One running micro-VM and the connection to its guest agent."""

    spec: SandboxSpec
    folder: Path
    process: subprocess.Popen[bytes] | None = None
    agent: GuestAgent | None = None
    boots: int = 0
    children: set[SandboxProcess] = field(default_factory=set)


class QemuBackend:
    """QEMU microvm micro-VMs; the guest image is built (and cached) on first use."""

    name = "qemu"

    def __init__(self) -> None:
        self._image: GuestImage | None = None

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
        return Availability(True, f"QEMU microvm, {mode}; cold boot per VM (no warm pool yet)")

    def image(self) -> GuestImage:
        """The guest image (built on first use, then cached)."""
        if self._image is None:
            self._image = build()
        return self._image

    def _command(self, vm: Vm, image: GuestImage) -> list[str]:
        return [
            "qemu-system-x86_64", "-M", "microvm,pit=on,pic=on,rtc=on", *accelerator(),
            "-m", str(max(vm.spec.memory_mib, 256)), "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-serial", f"file:{vm.folder / 'console.log'}",
            "-kernel", str(image.kernel), "-initrd", str(image.initrd),
            "-append", f"console=ttyS0 reboot=t panic=-1 quiet tsc_early_khz={_tsc_khz()}",
            "-device", "virtio-serial-device",
            "-chardev", f"socket,id=agent,path={vm.folder / 'agent.sock'},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=luminaguard",
        ]  # fmt: skip

    async def _boot(self, vm: Vm) -> None:
        image = await asyncio.to_thread(self.image)
        sock = vm.folder / "agent.sock"
        sock.unlink(missing_ok=True)
        vm.process = subprocess.Popen(self._command(vm, image), preexec_fn=_die_with_parent)
        vm.boots += 1
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not sock.exists():
            if time.monotonic() > deadline or vm.process.poll() is not None:
                raise BackendError(f"QEMU did not start (see {vm.folder / 'console.log'})")
            await asyncio.sleep(0.005)
        vm.agent = await self._connect(sock, deadline)

    async def _connect(self, sock: Path, deadline: float) -> GuestAgent:
        # QEMU drops a connection made before the guest opens its port: retry until hello
        while True:
            reader, writer = await asyncio.open_unix_connection(str(sock))
            agent = GuestAgent(reader, writer)
            try:
                await agent.request("hello", wait=0.5)
                return agent
            except TransportError:
                await agent.aclose()
                if time.monotonic() > deadline:
                    raise BackendError("the guest agent did not answer in time") from None

    async def create(self, spec: SandboxSpec) -> Vm:
        """Boot a VM for the agent (mounts cannot be shared into a VM yet)."""
        if spec.mounts:
            raise BackendError(
                "the qemu backend cannot share host folders into the VM yet; remove mounts"
            )
        vm = Vm(spec, Path(tempfile.mkdtemp(prefix=f"luminaguard-vm-{spec.name}-")))
        await self._boot(vm)
        return vm

    async def _running(self, handle: SandboxHandle) -> Vm:
        assert isinstance(handle, Vm)
        if handle.process is None or handle.process.poll() is not None:
            await self._boot(handle)
        return handle

    async def spawn(
        self, handle: SandboxHandle, argv: list[str], env: dict[str, str] | None = None
    ) -> SandboxProcess:
        """Start a long-lived process (an MCP stdio server) in the VM."""
        vm = await self._running(handle)
        assert vm.agent is not None
        process = await vm.agent.spawn(argv, {**vm.spec.env, **(env or {})})
        vm.children.add(process)
        return process

    async def exec(self, handle: SandboxHandle, command: str, timeout: float) -> ExecResult:
        """Run a shell command in the VM; past its timeout the VM is killed."""
        vm = await self._running(handle)
        assert vm.agent is not None
        started = time.monotonic()
        limits = {"cpu_seconds": vm.spec.cpu_seconds, "pids": vm.spec.pids}
        try:
            result = await vm.agent.exec(command, timeout, **limits)
        except TransportError as exc:
            self._kill(vm)
            return ExecResult(-9, "", str(exc), time.monotonic() - started, timed_out=True)
        if result.timed_out:
            self._kill(vm)  # the VM may hold what the command left behind: it goes
        return result

    def _kill(self, vm: Vm) -> None:
        if vm.process is not None and vm.process.poll() is None:
            vm.process.kill()
            vm.process.wait()

    async def destroy(self, handle: SandboxHandle) -> None:
        """Stop the VM and remove its folder."""
        assert isinstance(handle, Vm)
        if handle.agent is not None:
            with contextlib.suppress(TransportError, OSError):
                await asyncio.wait_for(handle.agent.aclose(), 2)
        self._kill(handle)
        shutil.rmtree(handle.folder, ignore_errors=True)

"""The ``firecracker`` backend: Firecracker as the Machine of a ``VmBackend``.

One ``firecracker`` process per VM, driven through its API socket (``firecracker_api``):
the same kernel and initramfs as the qemu backend, the recipe's tools disk as a
read-only drive, and the guest agent on vsock port 1024, reached through Firecracker's
Unix socket with its ``CONNECT <port>`` handshake. Snapshots are Firecracker's full
snapshots; each clone maps the memory file copy-on-write and gets its own vsock socket.
It needs the ``firecracker`` binary and hardware KVM; ``luminaguard doctor`` says which
is missing. VMs die with the runner (PDEATHSIG), as under QEMU.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from luminaguard.hypervisor.base import Availability, BackendError, SandboxSpec, VmShape
from luminaguard.hypervisor.vm.backend import VmBackend
from luminaguard.hypervisor.vm.firecracker.api import (
    Body,
    FirecrackerApi,
    Unreachable,
    VmConfig,
    unix_http,
)
from luminaguard.hypervisor.vm.guest.client import GuestAgent, GuestError
from luminaguard.hypervisor.vm.image.build import CACHE, GuestImage
from luminaguard.hypervisor.vm.kvm import hardware_kvm
from luminaguard.hypervisor.vm.machine import (
    BOOT_TIMEOUT,
    Snapshot,
    Vm,
    die_with_parent,
    snapshot_key,
)
from luminaguard.hypervisor.vm.waiting import poll

AGENT_PORT = 1024
BOOT_ARGS = (
    "console=ttyS0 reboot=k panic=1 pci=off quiet PYTHONHASHSEED=0 LUMINAGUARD_CHANNEL=vsock"
)


def binary() -> str | None:
    """The firecracker binary: ``$LUMINAGUARD_FIRECRACKER`` or ``firecracker`` on PATH."""
    return shutil.which(os.environ.get("LUMINAGUARD_FIRECRACKER", "firecracker"))


def _launch(folder: Path) -> subprocess.Popen[bytes]:
    found = binary()
    if found is None:
        raise BackendError("the firecracker binary is not installed")
    for stale in ("api.sock", "vsock.sock"):  # a boot tried again reuses the folder
        (folder / stale).unlink(missing_ok=True)
    with (folder / "firecracker.log").open("ab") as log:
        return subprocess.Popen(
            [found, "--api-sock", str(folder / "api.sock")],
            preexec_fn=die_with_parent, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip


def _api(vm: Vm, deadline: float) -> FirecrackerApi:
    """The VM's API; a request waits (until ``deadline``) for Firecracker to listen.

    Firecracker creates its socket file a moment before it listens on it: a request
    refused then was not sent, and is sent again while the process runs.
    """
    process, sock = vm.process, vm.folder / "api.sock"
    assert process is not None

    async def send(method: str, path: str, body: Body) -> tuple[int, Any]:
        async def attempt() -> tuple[int, Any] | None:
            try:
                return await unix_http(sock, method, path, body)
            except Unreachable:
                return None

        what = "the Firecracker API did not answer"
        return await poll(attempt, deadline, what, process, vm.folder)

    return FirecrackerApi(send)


async def _handshake(uds: Path) -> GuestAgent:
    reader, writer = await asyncio.open_unix_connection(str(uds))
    try:
        writer.write(f"CONNECT {AGENT_PORT}\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 1)
        if not answer.startswith(b"OK "):
            raise ConnectionError(f"vsock handshake answered {answer!r}")
    except BaseException:
        writer.close()  # each failed try would otherwise leave its socket open
        raise
    agent = GuestAgent(reader, writer)
    try:
        await agent.request("hello", wait=1)
    except GuestError:
        await agent.aclose()
        raise
    return agent


async def vsock_agent(vm: Vm, deadline: float) -> GuestAgent:
    """The guest agent through Firecracker's vsock socket, once the guest listens."""
    assert vm.process is not None

    async def attempt() -> GuestAgent | None:
        try:
            return await _handshake(vm.folder / "vsock.sock")
        except (OSError, TimeoutError, GuestError):
            return None

    what = "the guest agent did not answer on vsock"
    return await poll(attempt, deadline, what, vm.process, vm.folder, 0.02)


def _config(vm: Vm, image: GuestImage, memory_mib: int, vcpus: int) -> VmConfig:
    disk = " LUMINAGUARD_DISK=1" if image.disk is not None else ""
    return VmConfig(
        image.kernel, initrd=image.initrd, tools_disk=image.disk, boot_args=BOOT_ARGS + disk,
        vcpus=vcpus, memory_mib=memory_mib, vsock_path=vm.folder / "vsock.sock",
    )  # fmt: skip


def _folder(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"luminaguard-fc-{name}-"))


class FirecrackerMachine:
    """Firecracker: cold boots, full snapshots, copy-on-write clone restores."""

    async def boot(self, vm: Vm, image: GuestImage) -> None:
        """Configure and start a VM, then connect to its agent over vsock."""
        vm.process = _launch(vm.folder)
        deadline = time.monotonic() + BOOT_TIMEOUT
        try:
            api = _api(vm, deadline)
            await api.configure(_config(vm, image, vm.spec.shape.memory_mib, vm.spec.shape.vcpus))
            await api.start()
            vm.agent = await vsock_agent(vm, deadline)
        except BaseException:
            vm.kill()
            raise

    async def snapshot(self, image: GuestImage, memory_mib: int, vcpus: int) -> Snapshot:
        """Boot once, pause, write a full snapshot to the cache (reused while its files exist)."""
        key = snapshot_key(image, memory_mib, vcpus, vmm="fc")
        snapshot = Snapshot(image, memory_mib, vcpus, CACHE / f"{key}.mem", CACHE / f"{key}.state")
        if snapshot.ram.exists() and snapshot.state.exists():
            return snapshot
        spec = SandboxSpec("snapshot", CACHE, vm=VmShape(memory_mib=memory_mib, vcpus=vcpus))
        vm = Vm(spec, _folder("snapshot"))
        try:
            await self.boot(vm, image)
            assert vm.agent is not None
            await vm.agent.aclose()  # the snapshot must not hold a host connection
            api = _api(vm, time.monotonic() + BOOT_TIMEOUT)
            await api.pause()
            await api.snapshot(snapshot.state, snapshot.ram)
        finally:
            vm.kill()
            shutil.rmtree(vm.folder, ignore_errors=True)
        return snapshot

    async def restore(self, snapshot: Snapshot, spec: SandboxSpec) -> Vm:
        """A clone: the snapshot loaded with its own vsock socket, resumed and reseeded."""
        vm = Vm(spec, _folder(spec.name))
        vm.process = _launch(vm.folder)
        deadline = time.monotonic() + BOOT_TIMEOUT
        try:
            api = _api(vm, deadline)
            await api.restore(snapshot.state, snapshot.ram, vm.folder / "vsock.sock")
            vm.agent = await vsock_agent(vm, deadline)
            await vm.agent.reseed()
        except BaseException:
            vm.kill()
            raise
        return vm


class FirecrackerBackend(VmBackend):
    """Firecracker micro-VMs (hardware KVM only)."""

    name = "firecracker"

    def __init__(self) -> None:
        super().__init__(FirecrackerMachine())

    def availability(self) -> Availability:
        """Usable where the firecracker binary and hardware KVM both exist."""
        found = binary()
        if found is None:
            return Availability(False, "firecracker binary not found (no registry here ships it)")
        if not hardware_kvm():
            return Availability(False, f"{found} found, but no hardware KVM (vmx/svm) here")
        return Availability(True, f"Firecracker ({found}); warm pools of snapshot clones")

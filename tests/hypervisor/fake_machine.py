"""A ``VmBackend`` over a fake Machine, for tests of what opens and closes VMs and pools.

Each fake VM is a host process (``sleep``) that lives until it is killed, as a VMM
does; its "guest agent" answers commands without running them and starts MCP
servers as host processes. Nothing is virtualized: this tests the host side only.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, cast

from luminaguard.hypervisor.base import Availability, ExecResult, SandboxSpec
from luminaguard.hypervisor.vm.backend import VmBackend
from luminaguard.hypervisor.vm.guest.client import GuestAgent
from luminaguard.hypervisor.vm.image.build import GuestImage
from luminaguard.hypervisor.vm.machine import Snapshot, Vm


class FakeAgent:
    """A guest agent that says every command succeeded and runs servers on the host."""

    async def exec(self, command: str, timeout: float, **options: Any) -> ExecResult:
        return ExecResult(0, f"ran: {command}\n", "", 0.0)

    async def spawn(
        self, argv: list[str], env: dict[str, str] | None = None, **limits: int
    ) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )

    async def reseed(self) -> str:
        return "fake"

    async def aclose(self) -> None:
        pass


class FakeMachine:
    """Boots, snapshots and restores fake VMs, keeping every one it started."""

    def __init__(self) -> None:
        self.vms: list[Vm] = []
        self.snapshots: list[tuple[str, int, int]] = []  # image key, memory, vCPUs

    async def boot(self, vm: Vm, image: GuestImage) -> None:
        vm.process = subprocess.Popen(["sleep", "600"])
        vm.agent = cast(GuestAgent, FakeAgent())
        self.vms.append(vm)

    async def snapshot(self, image: GuestImage, memory_mib: int, vcpus: int) -> Snapshot:
        self.snapshots.append((image.key, memory_mib, vcpus))
        return Snapshot(image, memory_mib, vcpus, Path("/nonexistent.ram"), Path("/nonexistent"))

    async def restore(self, snapshot: Snapshot, spec: SandboxSpec) -> Vm:
        vm = Vm(spec, Path(tempfile.mkdtemp(prefix="luminaguard-fake-vm-")))
        await self.boot(vm, snapshot.image)
        return vm

    def running(self) -> list[Vm]:
        """The VMs whose process has not exited."""
        return [vm for vm in self.vms if vm.process is not None and vm.process.poll() is None]


class FakeVmBackend(VmBackend):
    """A micro-VM backend of fake VMs; its images are named after their recipe."""

    name = "fake-vm"

    def __init__(self) -> None:
        self.fake = FakeMachine()
        super().__init__(self.fake)

    def availability(self) -> Availability:
        return Availability(True, "test double")

    def image(self, recipe: Path | None = None) -> GuestImage:
        key = str(recipe) if recipe else "built-in"
        return GuestImage(Path("/nonexistent/vmlinuz"), Path("/nonexistent/initrd"), key)

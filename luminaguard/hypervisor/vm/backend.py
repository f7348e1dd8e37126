"""What every micro-VM backend shares: images, warm pools, commands through the guest agent.

A backend is a ``Machine`` (how to boot a VM, snapshot one, restore a clone: QEMU or
Firecracker) behind one ``VmBackend``. The guest has no network device, a read-only
root and tmpfs at /work and /tmp; nothing of the host is shared with it. Commands and
MCP servers run through the guest agent. An agent with a ``pool`` gets a clone from
that pool's warm snapshot clones (pools are configured once, by name, with
``configure_pools``); otherwise its VM boots cold, in the shape it asks for (a boot that
times out, as on a loaded machine, is tried again, logged). A command past its timeout
costs its VM: it is killed and the next command gets a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from luminaguard.hypervisor.base import (
    AsyncClosing,
    BackendError,
    ExecResult,
    PoolConfig,
    SandboxHandle,
    SandboxProcess,
    SandboxSpec,
)
from luminaguard.hypervisor.vm import folder_disks
from luminaguard.hypervisor.vm.guest.client import GuestError
from luminaguard.hypervisor.vm.image.build import GuestImage, build
from luminaguard.hypervisor.vm.image.recipe import Recipe
from luminaguard.hypervisor.vm.machine import BOOT_ATTEMPTS, Machine, Vm
from luminaguard.hypervisor.vm.pool import VmPool
from luminaguard.hypervisor.vm.retry import tried
from luminaguard.hypervisor.vm.waiting import BootTimeout

log = logging.getLogger(__name__)


class VmBackend(AsyncClosing):
    """Micro-VMs of one Machine; the guest image is built (and cached) on first use."""

    name = "vm"
    micro_vm = True
    egress = False  # whether the Machine can give a VM an egress allow-list
    folders = False  # whether the Machine can attach host folders (packed, read-only)

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self._images: dict[Path | None, GuestImage] = {}
        self.pool_configs: dict[str, PoolConfig] = {}
        self.pools: dict[str, VmPool] = {}
        self._pool_lock = asyncio.Lock()
        self._building = threading.Lock()

    def image(self, recipe: Path | None = None) -> GuestImage:
        """The guest image of a recipe (built on first use, then cached); default: built-in."""
        with self._building:  # agents sharing a recipe build its image once
            if recipe not in self._images:
                self._images[recipe] = build(Recipe.load(recipe)) if recipe else build()
            return self._images[recipe]

    def configure_pools(self, pools: Iterable[PoolConfig]) -> None:
        """Know these pools, each started on first use; a pool is configured once.

        The same configuration again changes nothing; another one for a known name is
        a BackendError (agents of different runs would get clones of different VMs).
        """
        for config in pools:
            known = self.pool_configs.setdefault(config.name, config)
            if known != config:
                raise BackendError(f"pool {config.name!r} is configured already, differently")

    async def pool(self, name: str) -> VmPool:
        """The warm pool of this name, started (snapshot taken) on first use."""
        if name not in self.pool_configs:
            raise BackendError(f"no pool {name!r} is configured on the {self.name} backend")
        config = self.pool_configs[name]
        async with self._pool_lock:
            if name not in self.pools:
                image = await asyncio.to_thread(self.image, config.shape.recipe)
                shape = config.shape
                snapshot = await self.machine.snapshot(image, shape.memory_mib, shape.vcpus)
                self.pools[name] = VmPool(
                    name, snapshot, config.warm, max(config.maximum, 1), self.machine.restore
                )
                self.pools[name].refill()
        return self.pools[name]

    async def _fresh(self, spec: SandboxSpec) -> Vm:
        if spec.pool:
            return await (await self.pool(spec.pool)).acquire(spec)
        vm = Vm(spec, Path(tempfile.mkdtemp(prefix=f"luminaguard-vm-{spec.name}-")))
        vm.disks = await asyncio.to_thread(folder_disks.pack, spec.mounts, vm.folder)
        image = await asyncio.to_thread(self.image, spec.shape.recipe)
        what = f"cold boot of a VM for {spec.name!r}"  # a boot that timed out may pass: again
        await tried(lambda: self.machine.boot(vm, image), BOOT_ATTEMPTS, BootTimeout, what, log)
        return vm

    def _refuse(self, what: str, wanted: bool, supported: bool, spec: SandboxSpec) -> None:
        if wanted and (spec.pool or not supported):
            where = "pools (such VMs boot cold)" if spec.pool else f"the {self.name} backend"
            raise BackendError(f"{what} not available with {where}")

    async def create(self, spec: SandboxSpec) -> Vm:
        """A VM for the agent: a pool clone, or a cold boot (with its folders and egress)."""
        self._refuse("host folder mounts are", bool(spec.mounts), self.folders, spec)
        folder_disks.check(spec.mounts)
        if spec.network and not spec.egress:
            raise BackendError("network: egress-allowlist with no egress entries reaches nothing")
        self._refuse("an egress allow-list is", bool(spec.egress), self.egress, spec)
        return await self._fresh(spec)

    async def _running(self, handle: SandboxHandle) -> Vm:
        assert isinstance(handle, Vm)
        if handle.process is None or handle.process.poll() is not None:
            if handle.pool is not None:
                handle.pool.release(handle)  # the dead VM leaves the pool's books
            shutil.rmtree(handle.folder, ignore_errors=True)
            fresh = await self._fresh(handle.spec)
            handle.process, handle.agent, handle.folder = fresh.process, fresh.agent, fresh.folder
            handle.pool, handle.disks = fresh.pool, fresh.disks
            if fresh.pool is not None:  # the pool tracks the handle, not the throwaway object
                fresh.pool.busy[fresh.pool.busy.index(fresh)] = handle
        return handle

    async def spawn(
        self, handle: SandboxHandle, argv: list[str], env: dict[str, str] | None = None
    ) -> SandboxProcess:
        """Start a long-lived process (an MCP stdio server) in the VM."""
        vm = await self._running(handle)
        assert vm.agent is not None
        return await vm.agent.spawn(argv, {**vm.spec.env, **(env or {})}, **_limits(vm))

    async def exec(self, handle: SandboxHandle, command: str, timeout: float) -> ExecResult:
        """Run a shell command in the VM; past its timeout the VM is killed."""
        vm = await self._running(handle)
        assert vm.agent is not None
        started = time.monotonic()
        try:
            result = await vm.agent.exec(command, timeout, env=vm.spec.env, **_limits(vm))
        except GuestError as exc:
            vm.kill()
            return ExecResult(-9, "", str(exc), time.monotonic() - started, timed_out=True)
        if result.timed_out:
            vm.kill()  # the VM may hold what the command left behind: it goes
        return result

    async def destroy(self, handle: SandboxHandle) -> None:
        """Stop the VM (a pool clone is never reused) and remove its folder."""
        assert isinstance(handle, Vm)
        if handle.agent is not None:
            with contextlib.suppress(GuestError, OSError):
                await asyncio.wait_for(handle.agent.aclose(), 2)
        if handle.pool is not None:
            handle.pool.release(handle)
        handle.kill()
        shutil.rmtree(handle.folder, ignore_errors=True)

    async def aclose(self) -> None:
        """Destroy every pool's VMs, those being restored included."""
        pools, self.pools = list(self.pools.values()), {}
        for pool in pools:
            await pool.close()


def _limits(vm: Vm) -> dict[str, int]:
    """The rlimits the guest agent applies to a command or server: the agent's limits."""
    return {"cpu_seconds": vm.spec.cpu_seconds, "pids": vm.spec.pids}

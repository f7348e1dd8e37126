"""The default backend: Linux namespaces, no install needed beyond Python and the kernel.

Each command runs in fresh mount, PID, network, IPC and UTS namespaces (and a user
namespace when not root) built by ``sandbox.helper``: no network, host system folders
read-only, the agent's private work folder read-write, memory and process limits
from cgroups (or rlimits), a CPU quota, CPU-time limit, a seccomp filter, and a
wall-clock timeout enforced here. As root, each sandbox runs as its own uid
(``sandbox_users``) and its ``/work`` is a disk of ``disk_mib`` (``work_disk``).
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import sys
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from luminaguard.hypervisor.base import (
    AsyncClosing,
    Availability,
    BackendError,
    ExecResult,
    SandboxHandle,
    SandboxProcess,
    SandboxSpec,
)
from luminaguard.hypervisor.linux import cgroups, work_disk
from luminaguard.hypervisor.linux.cgroups import CgroupLimits, cpu_quota, hierarchy
from luminaguard.hypervisor.linux.completion import complete
from luminaguard.hypervisor.linux.env import environment
from luminaguard.hypervisor.linux.users import SandboxUser, allocate, hand_over
from luminaguard.hypervisor.sandbox import native
from luminaguard.hypervisor.sandbox.zygote import Zygote


@dataclass
class Sandbox:
    """One agent's sandbox: its spec, a mount point for the new root, live processes."""

    spec: SandboxSpec
    root: Path
    user: SandboxUser | None = None  # None when not root: a user namespace maps us to 0
    processes: set[SandboxProcess] = field(default_factory=set)


def _kill_group(process: SandboxProcess) -> None:
    process.kill()


def _refused(exc: BaseException) -> BackendError | None:
    """The step's failure when the zygote cannot be sent the request at all; else None.

    A command built from a step's outputs may be longer than the zygote's socket takes
    (EMSGSIZE) or hold a NUL byte (ValueError): the step fails, never the runner.
    """
    if isinstance(exc, ValueError) or (isinstance(exc, OSError) and exc.errno == errno.EMSGSIZE):
        return BackendError(f"the command cannot be sent to the sandbox: {exc}")
    return None


class SandboxBackend(AsyncClosing):
    """Linux namespaces via the ``sandbox.helper`` helper; the default backend."""

    name = "sandbox"
    micro_vm = False

    def __init__(self) -> None:
        self.zygote = Zygote()
        self.swept = False  # the cgroups of dead runners: swept before the first sandbox

    async def sweep(self) -> None:
        """Remove the cgroups of dead runners (killed, say, by SIGKILL) and what is in them.

        Done before this backend's first sandbox and whenever a run is resumed.
        """
        self.swept = True
        await asyncio.to_thread(cgroups.sweep)

    def availability(self) -> Availability:
        """Usable when namespaces can be created here (checked by running ``true``)."""
        if sys.platform != "linux":
            return Availability(False, "needs Linux namespaces")
        limits = {"v1": "cgroup v1", "v2": "cgroup v2", "none": "rlimits (no writable cgroups)"}
        cpu = "a CPU quota" if cpu_quota() else "no CPU quota (no writable cpu controller)"
        disk = work_disk.available()
        disk = (
            f"/work not size-limited ({disk}): each file at most disk_mib"
            if disk
            else "/work a disk of disk_mib"
        )
        zygote = native.reason()
        return Availability(
            True,
            f"Linux namespaces; memory and process limits by {limits[hierarchy()]}; {cpu}; {disk};"
            f" {zygote}",
        )

    async def create(self, spec: SandboxSpec) -> Sandbox:
        """Create the work folder and a root mount point; when root, take the sandbox's uid.

        The work folder is then a disk of ``disk_mib`` (see ``work_disk``) belonging to
        that uid alone (mode 0700).
        """
        if not self.swept:
            await self.sweep()
        spec.workdir.mkdir(parents=True, exist_ok=True)
        user = allocate() if os.getuid() == 0 else None
        try:
            if user is not None:
                work_disk.provide(spec.workdir, spec.disk_mib)
                hand_over(spec.workdir, user)
            root = spec.workdir.parent / f".root-{spec.name}"
            root.mkdir(parents=True, exist_ok=True)
        except BaseException:
            if user is not None:
                user.release()
            raise
        return Sandbox(spec, root, user)

    def _helper_args(
        self, sandbox: Sandbox, cgroups: list[str], env: dict[str, str] | None = None
    ) -> list[str]:
        spec = sandbox.spec
        args = [
            f"workdir={spec.workdir}",
            f"root={sandbox.root}",
            f"cpu_seconds={spec.cpu_seconds}",
            f"memory_mib={spec.memory_mib}",
            f"pids={spec.pids}",
            f"network={int(spec.network)}",
        ]
        if sandbox.user is not None:
            args.append(f"uid={sandbox.user.uid}")
        else:  # no disk of its own: each file at most disk_mib
            args.append(f"fsize_mib={spec.disk_mib}")
        args += [f"cgroup={path}" for path in cgroups]
        args += [
            f"mount={m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts
        ]
        declared = {**spec.env, **(env or {})}
        args += [f"env={name}={value}" for name, value in environment(declared).items()]
        return args

    async def _start(
        self, sandbox: Sandbox, argv: list[str], env: dict[str, str] | None = None
    ) -> tuple[SandboxProcess, CgroupLimits]:
        spec = sandbox.spec
        name = f"{spec.name}-{uuid.uuid4().hex[:8]}"
        limits = CgroupLimits(name, spec.memory_mib << 20, spec.pids, spec.cpus)
        cgroups = limits.create()
        try:
            process = await self.zygote.spawn(
                [*self._helper_args(sandbox, cgroups, env), "--", *argv]
            )
        except BaseException as exc:
            limits.remove()
            refused = _refused(exc)
            if refused is not None:
                raise refused from exc
            raise
        sandbox.processes.add(process)
        return process, limits

    async def spawn(
        self, handle: SandboxHandle, argv: list[str], env: dict[str, str] | None = None
    ) -> SandboxProcess:
        """Start a long-lived process (e.g. an MCP stdio server) in the sandbox."""
        assert isinstance(handle, Sandbox)
        process, limits = await self._start(handle, argv, env)

        async def cleanup() -> None:
            await process.wait()
            handle.processes.discard(process)
            await asyncio.to_thread(limits.remove)

        asyncio.get_running_loop().create_task(cleanup())
        return process

    async def exec(self, handle: SandboxHandle, command: str, timeout: float) -> ExecResult:
        """Run ``sh -c command`` in the sandbox; kill the whole sandbox on timeout."""
        assert isinstance(handle, Sandbox)
        process, limits = await self._start(handle, ["/bin/sh", "-c", command])
        try:
            done = await complete(process, timeout, lambda: _kill_group(process))
        except BaseException:  # cancelled (a run cancelled, a server stopping): so is it
            _kill_group(process)
            with suppress(ProcessLookupError):
                await process.wait()
            await asyncio.to_thread(limits.remove)
            raise
        finally:
            handle.processes.discard(process)
        oom = limits.out_of_memory() and done.exit_code != 0
        if not limits.try_remove():  # empty once PID 1 is reaped, which the zygote has done
            await asyncio.to_thread(limits.remove)
        return done.result(oom)

    async def destroy(self, handle: SandboxHandle) -> None:
        """Kill every process still running in the sandbox; remove its mount point."""
        assert isinstance(handle, Sandbox)
        for process in list(handle.processes):  # all killed first: a cancelled wait spares none
            _kill_group(process)
        for process in list(handle.processes):
            with suppress(ProcessLookupError):
                await process.wait()
        handle.processes.clear()
        shutil.rmtree(handle.root, ignore_errors=True)
        if handle.user is not None:
            handle.user.release()

    async def aclose(self) -> None:
        """Stop the zygote, if one was started (the next sandbox starts another)."""
        await asyncio.to_thread(self.zygote.close)

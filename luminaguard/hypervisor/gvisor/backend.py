"""The ``gvisor`` backend: each command in a gVisor sandbox (``runsc``), with no network.

gVisor puts a user-space kernel between the agent and the host kernel: a stronger
boundary than namespaces on machines whose KVM cannot run micro-VMs. Every
command is one OCI container (see ``gvisor_bundle``) under a state folder that
names the runner's pid, so containers a crashed runner left are deleted by the
next one. The memory limit and the CPU quota are a host cgroup around the whole
sandbox (gVisor's own kernel included); the process limit is an rlimit that gVisor
enforces; the CPU-time limit is an rlimit on the sandbox's host processes. Like the
namespace sandbox: its own uid, ``/work`` a disk of ``disk_mib``, the same seccomp
filter (enforced by gVisor) and the same environment.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import subprocess
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from luminaguard.hypervisor.base import (
    SETUP_FAILED,
    AsyncClosing,
    Availability,
    BackendError,
    ExecResult,
    SandboxHandle,
    SandboxSpec,
)
from luminaguard.hypervisor.gvisor import bundle as gvisor_bundle
from luminaguard.hypervisor.gvisor.runsc import Runsc, find_runsc
from luminaguard.hypervisor.linux import work_disk
from luminaguard.hypervisor.linux.cgroups import CgroupLimits
from luminaguard.hypervisor.linux.completion import complete
from luminaguard.hypervisor.linux.users import SandboxUser, allocate, hand_over

#: Host processes and threads of one sandbox (gVisor's kernel is many threads); the
#: agent's own process limit is enforced inside, by gVisor.
HOST_PIDS = 4096
STATE = Path(os.environ.get("LUMINAGUARD_RUNSC_STATE", "/run/luminaguard/runsc"))


@dataclass
class GvisorSandbox:
    """One agent's gVisor sandbox: its spec, its bundles' folder, its live containers."""

    spec: SandboxSpec
    bundles: Path
    user: SandboxUser
    processes: set[GvisorProcess] = field(default_factory=set)


class GvisorProcess:
    """``runsc run`` of one container: its pipes; ``kill`` kills the whole container."""

    def __init__(
        self,
        runsc: Runsc,
        container: str,
        process: asyncio.subprocess.Process,
        limits: CgroupLimits,
    ) -> None:
        self.runsc = runsc
        self.container = container
        self.process = process
        self.limits = limits
        self.out_of_memory = False
        self.deleted = False
        self.stdin = process.stdin
        self.stdout = process.stdout
        self.stderr = process.stderr

    @property
    def pid(self) -> int:
        """The pid of ``runsc run``."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The container's exit status once known."""
        return self.process.returncode

    async def wait(self) -> int:
        """Wait for the container to end, then delete its state."""
        code = await self.process.wait()
        if not self.deleted:  # wait may be called again: the container is deleted once
            self.deleted = True
            await asyncio.to_thread(self.runsc.delete, self.container)
            self.out_of_memory = self.limits.out_of_memory() and code != 0
            self.limits.remove()
        return code

    def kill(self) -> None:
        """Kill every process of the container, then ``runsc run`` itself."""
        self.runsc.kill(self.container)
        with suppress(ProcessLookupError):
            self.process.kill()


def _missing_mount(spec: SandboxSpec) -> str | None:
    for mount in spec.mounts:
        if not mount.source.is_dir():
            return f"luminaguard-sandbox: mount {mount.target}: {mount.source} is not a folder"
    return None


class GvisorBackend(AsyncClosing):
    """gVisor (``runsc``) per command; needs root and a runsc from 2023 or later."""

    name = "gvisor"
    micro_vm = False

    def __init__(self) -> None:
        self._runsc: Runsc | None = None

    def availability(self) -> Availability:
        """Usable when a recent enough runsc is installed and we are root."""
        found = find_runsc()
        if isinstance(found, str):
            return Availability(False, found)
        if os.getuid() != 0:
            return Availability(False, "runsc found, but this backend needs root")
        return Availability(True, f"gVisor {found.version} ({found.binary}), no network")

    @property
    def runsc(self) -> Runsc:
        """The runsc to use; the first use deletes containers that dead runners left."""
        if self._runsc is None:
            found = find_runsc()
            if isinstance(found, str):
                raise BackendError(found)
            self._runsc = found.under(STATE)
            self._runsc.reap_orphans()
        return self._runsc

    async def create(self, spec: SandboxSpec) -> GvisorSandbox:
        """Take the sandbox's own uid; its work folder (a disk, that uid's alone); bundles."""
        _ = self.runsc  # fails early when runsc is missing; reaps what dead runners left
        spec.workdir.mkdir(parents=True, exist_ok=True)
        user = allocate()
        try:
            work_disk.provide(spec.workdir, spec.disk_mib)
            hand_over(spec.workdir, user)
            bundles = spec.workdir.parent / f".gvisor-{spec.name}"
            bundles.mkdir(mode=0o700, parents=True, exist_ok=True)
        except BaseException:
            user.release()
            raise
        return GvisorSandbox(spec, bundles, user)

    async def spawn(
        self, handle: SandboxHandle, argv: list[str], env: dict[str, str] | None = None
    ) -> GvisorProcess:
        """Start ``argv`` in a new container of the sandbox, with pipes."""
        assert isinstance(handle, GvisorSandbox)
        container = self.runsc.container_id()
        bundle = handle.bundles / container
        gvisor_bundle.write(bundle, handle.spec, argv, env or {}, handle.user.uid)
        cpu = handle.spec.cpu_seconds
        limits = CgroupLimits(container, handle.spec.memory_mib << 20, HOST_PIDS, handle.spec.cpus)
        groups = limits.create()

        def limit() -> None:  # in the child, before runsc starts
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            for procs in groups:
                Path(procs).write_text(str(os.getpid()))

        try:
            process = await asyncio.create_subprocess_exec(
                *self.runsc.run_argv(container, bundle),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=limit,
            )
        except BaseException:
            limits.remove()
            raise
        started = GvisorProcess(self.runsc, container, process, limits)
        handle.processes.add(started)
        return started

    async def exec(self, handle: SandboxHandle, command: str, timeout: float) -> ExecResult:
        """Run ``sh -c command`` in a new container; kill the container on timeout."""
        assert isinstance(handle, GvisorSandbox)
        problem = _missing_mount(handle.spec)
        if problem:
            return ExecResult(SETUP_FAILED, "", problem + "\n", 0.0)
        process = await self.spawn(handle, ["/bin/sh", "-c", command])
        try:
            done = await complete(process, timeout, process.kill)
        finally:
            handle.processes.discard(process)
            shutil.rmtree(handle.bundles / process.container, ignore_errors=True)
        return done.result(process.out_of_memory)

    async def destroy(self, handle: SandboxHandle) -> None:
        """Kill every container still running in the sandbox; remove its bundles."""
        assert isinstance(handle, GvisorSandbox)
        for process in list(handle.processes):
            process.kill()
            await process.wait()
        handle.processes.clear()
        shutil.rmtree(handle.bundles, ignore_errors=True)
        handle.user.release()

    async def aclose(self) -> None:
        """Nothing to release: each container goes when it ends, the rest with its sandbox."""

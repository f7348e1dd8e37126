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

gVisor's start-up (runsc boots a kernel per container) takes a fraction of a second
on an idle machine and tens of seconds on a loaded one. It is not the command's: a
process is handed out once runsc has created its container (runsc writes the
sandbox's pid into a FIFO then), so a step's timeout counts the command alone; the
start-up has its own bound, START_TIMEOUT, past which the sandbox is killed and the
step fails saying so. A timed-out or abandoned container is killed through its
cgroups, every host process at once, whatever runsc is doing.
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
from luminaguard.hypervisor.linux.cgroups import CgroupLimits, join
from luminaguard.hypervisor.linux.completion import complete
from luminaguard.hypervisor.linux.users import SandboxUser, allocate, hand_over

#: Host processes and threads of one sandbox (gVisor's kernel is many threads); the
#: agent's own process limit is enforced inside, by gVisor.
HOST_PIDS = 4096
STATE = Path(os.environ.get("LUMINAGUARD_RUNSC_STATE", "/run/luminaguard/runsc"))
#: How long runsc may take to start a sandbox (seconds) before it is killed.
START_TIMEOUT = 120.0


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
        self.released = False
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
        """Wait for the container to end (its state stays until ``release``)."""
        return await self.process.wait()

    def kill(self) -> None:
        """Kill every host process of the container: ``runsc run``, its gofer, gVisor's kernel.

        Through the cgroups that ``runsc run`` joined before it started anything, so
        nothing escapes whether runsc is still starting the sandbox or running the
        command; where there are none, ``runsc kill``, then ``runsc run`` itself.
        """
        if self.limits.dirs:
            self.limits.kill()
        else:
            self.runsc.kill(self.container)
        with suppress(ProcessLookupError):
            self.process.kill()

    async def release(self) -> None:
        """Once the container ended: delete its state, note an OOM kill, remove its cgroups."""
        if self.released:
            return
        self.released = True
        await asyncio.to_thread(self.runsc.delete, self.container)
        self.out_of_memory = self.limits.out_of_memory() and self.process.returncode != 0
        await asyncio.to_thread(self.limits.remove)


async def _readable(fd: int) -> None:
    """Return once ``fd`` has something to read."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def _abandon(handle: GvisorSandbox, process: GvisorProcess) -> None:
    """Kill a container that is not handed out, and clean up after it."""
    process.kill()
    await process.wait()
    await process.release()
    handle.processes.discard(process)


async def _until_created(handle: GvisorSandbox, process: GvisorProcess, created: int) -> None:
    """Wait until runsc has created the container (``created`` is readable) or has ended.

    Past START_TIMEOUT, or when cancelled, the container is killed.
    """
    waits = [asyncio.ensure_future(_readable(created)), asyncio.ensure_future(process.wait())]
    try:
        done, _ = await asyncio.wait(
            waits, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
    except BaseException:
        await _abandon(handle, process)
        raise
    finally:
        for waiting in waits:
            waiting.cancel()
    if not done:
        await _abandon(handle, process)
        raise BackendError(
            f"gVisor did not start the sandbox within {START_TIMEOUT:.0f}s; it was killed"
        )


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
        """Take the sandbox's own uid; its work folder (a disk, that uid's alone); bundles.

        Containers of dead runners are deleted first, every time: a long-lived runner (the
        server) resuming a run a killed one drove would otherwise hand its work folder over
        while that runner's containers still run the agent's code in it.
        """
        await asyncio.to_thread(self.runsc.reap_orphans)  # fails early when runsc is missing
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
        """Start ``argv`` in a new container of the sandbox, with pipes.

        Returns once the container is created: what follows is the command's time.
        """
        assert isinstance(handle, GvisorSandbox)
        container = self.runsc.container_id()
        bundle = handle.bundles / container
        gvisor_bundle.write(bundle, handle.spec, argv, env or {}, handle.user.uid)
        created = bundle / "created"
        os.mkfifo(created, 0o600)
        # its read end, and a write end of ours: no end-of-file before runsc writes
        ends = [os.open(created, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)]
        ends.append(os.open(created, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        try:
            process = await self._run(handle, container, bundle, created)
            await _until_created(handle, process, ends[0])
        finally:
            for end in ends:
                os.close(end)
        return process

    async def _run(
        self, handle: GvisorSandbox, container: str, bundle: Path, created: Path
    ) -> GvisorProcess:
        """Start ``runsc run`` for ``bundle`` in the container's own cgroups."""
        cpu = handle.spec.cpu_seconds
        limits = CgroupLimits(container, handle.spec.memory_mib << 20, HOST_PIDS, handle.spec.cpus)
        groups = limits.create()

        def limit() -> None:  # in the child, before runsc starts
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            join(groups)  # the forked child has one thread

        try:
            process = await asyncio.create_subprocess_exec(
                *self.runsc.run_argv(container, bundle, created),
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
        """Run ``sh -c command`` in a new container; kill the container on timeout.

        ``timeout`` counts from the container's creation (see ``spawn``).
        """
        assert isinstance(handle, GvisorSandbox)
        problem = _missing_mount(handle.spec)
        if problem:
            return ExecResult(SETUP_FAILED, "", problem + "\n", 0.0)
        process = await self.spawn(handle, ["/bin/sh", "-c", command])
        try:
            done = await complete(process, timeout, process.kill)
        finally:
            if process.returncode is None:  # cancelled: the container goes too
                process.kill()
                await process.wait()
            await process.release()
            handle.processes.discard(process)
            shutil.rmtree(handle.bundles / process.container, ignore_errors=True)
        return done.result(process.out_of_memory)

    async def destroy(self, handle: SandboxHandle) -> None:
        """Kill every container still running in the sandbox; remove its bundles."""
        assert isinstance(handle, GvisorSandbox)
        for process in list(handle.processes):
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.release()
        handle.processes.clear()
        shutil.rmtree(handle.bundles, ignore_errors=True)
        handle.user.release()

    async def aclose(self) -> None:
        """Nothing to release: each container goes when it ends, the rest with its sandbox."""

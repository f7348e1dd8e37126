"""The hypervisor layer's contract: one Protocol every backend implements.

A backend prepares an isolated place for one agent (``create``), runs processes
in it (``spawn`` for a long-lived process with pipes, ``exec`` for a command to
completion), and removes it (``destroy``). What it holds across sandboxes (warm
pools, a zygote) it releases in ``aclose``, which ``async with backend:`` calls on
the way out. The scheduler sees nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from luminaguard.errors import LuminaGuardError
from luminaguard.process import SETUP_FAILED, ByteWriter, ExecResult, SandboxProcess

__all__ = [
    "SETUP_FAILED",
    "AsyncClosing",
    "Availability",
    "Backend",
    "BackendError",
    "ByteWriter",
    "ExecResult",
    "Mount",
    "PoolConfig",
    "PoolingBackend",
    "SandboxHandle",
    "SandboxProcess",
    "SandboxSpec",
    "VmShape",
]


class BackendError(LuminaGuardError):
    """A backend cannot provide what an agent asks for (it fails the step, not the run)."""


@dataclass(frozen=True)
class Mount:
    """A host folder made visible inside the sandbox, read-only unless said otherwise."""

    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class VmShape:
    """What a micro-VM boots: its image recipe, its memory and its virtual CPUs.

    A VM backend's snapshot (and so a warm pool's clones) is keyed by the image built
    from ``recipe`` and by ``memory_mib`` and ``vcpus``: two pools of one shape share it.
    """

    recipe: Path | None = None  # rootfs/NAME.yaml of the Image; None: the built-in image
    memory_mib: int = 256  # the guest's memory (the Image's memory_mib)
    vcpus: int = 1


@dataclass(frozen=True)
class PoolConfig:
    """A warm pool of micro-VMs, configured once per backend from its Pool document.

    Clones are restored from one snapshot of ``shape`` before any agent asks for them,
    so nothing of an agent is in here: each acquisition is bound to its agent's
    ``SandboxSpec`` (environment, limits) when it is handed out.
    """

    name: str
    shape: VmShape = VmShape()
    warm: int = 1  # clones kept ready
    maximum: int = 8  # clones at most, ready, busy and being restored


@dataclass(frozen=True)
class SandboxSpec:
    """What one agent asks of a backend: its sandbox or VM, its limits, its environment.

    Every backend reads the first fields. A micro-VM backend also reads ``vm`` (the VM
    to boot cold) or ``pool`` (the configured pool to take a clone from, whose shape is
    the pool's). Other backends ignore both: the scheduler refuses, before it asks
    them, an agent that wants a VM (``scheduler.sandbox_set.check_boundary``).
    """

    name: str
    workdir: Path
    mounts: tuple[Mount, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    memory_mib: int = 512
    cpu_seconds: int = 300
    pids: int = 128
    cpus: float = 1.0  # CPU quota: cores' worth of CPU time (namespace and gVisor sandboxes)
    disk_mib: int = 1024  # the size of /work (namespace and gVisor sandboxes, when root)
    network: bool = False
    egress: tuple[str, ...] = ()  # VM backends: the only host:port pairs the guest may reach
    vm: VmShape | None = None  # VM backends: the VM to boot cold; None: the default shape
    pool: str | None = None  # VM backends: take a clone from the pool of this name instead

    def __post_init__(self) -> None:
        if self.vm is not None and self.pool is not None:
            raise ValueError("a sandbox spec names a VM shape or a pool (which has one), not both")

    @property
    def shape(self) -> VmShape:
        """The VM to boot cold: the one asked for, else the default shape."""
        return self.vm or VmShape()


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run on this machine, and why (for ``luminaguard doctor``)."""

    usable: bool
    detail: str


class SandboxHandle(Protocol):
    """A created sandbox: what ``create`` returns and the other calls take."""

    spec: SandboxSpec


class Backend(Protocol):
    """One isolation technology: namespaces, gVisor, a micro-VM."""

    name: str
    micro_vm: bool  # whether it runs agents in VMs, so that pools and images mean something

    def availability(self) -> Availability:
        """Whether this machine can run the backend, and why."""
        ...

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        """Prepare a sandbox for one agent (its work directory, its limits)."""
        ...

    async def spawn(
        self, handle: SandboxHandle, argv: list[str], env: dict[str, str] | None = None
    ) -> SandboxProcess:
        """Start a process inside the sandbox with pipes on stdin, stdout and stderr.

        ``env`` adds to the sandbox's environment for this process only.
        """
        ...

    async def exec(self, handle: SandboxHandle, command: str, timeout: float) -> ExecResult:
        """Run a shell command inside the sandbox to completion or timeout."""
        ...

    async def destroy(self, handle: SandboxHandle) -> None:
        """Kill what still runs in the sandbox and release its resources."""
        ...

    async def aclose(self) -> None:
        """Release what the backend holds across sandboxes: its warm pools, its zygote.

        The sandboxes it created are their creator's to destroy first. Closing twice is
        harmless; a closed backend is not used again.
        """
        ...

    async def __aenter__(self) -> Self:
        """The backend itself; ``aclose`` runs when the ``async with`` block ends."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the backend (``aclose``), however the block ended."""
        ...


@runtime_checkable
class PoolingBackend(Protocol):
    """A backend with warm pools (the micro-VM backends), each configured once by name."""

    def configure_pools(self, pools: Iterable[PoolConfig]) -> None:
        """Know these pools (started on first use); BackendError if one is known otherwise."""
        ...


@runtime_checkable
class SweepingBackend(Protocol):
    """A backend that can clean up after dead runners (their cgroups, say) on ``resume``."""

    async def sweep(self) -> None:
        """Release what processes that died without cleaning up left behind."""
        ...


class AsyncClosing:
    """``async with`` for a backend: the block's end calls the backend's ``aclose``."""

    async def aclose(self) -> None:
        """Release what the backend holds (nothing, unless a backend says otherwise)."""

    async def __aenter__(self) -> Self:
        """The backend itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the backend, however the block ended."""
        await self.aclose()

"""The hypervisor layer's contract: one Protocol every backend implements.

A backend prepares an isolated place for one agent (``create``), runs processes
in it (``spawn`` for a long-lived process with pipes, ``exec`` for a command to
completion), and removes it (``destroy``). What it holds across sandboxes (warm
pools, a zygote) it releases in ``aclose``, which ``async with backend:`` calls on
the way out. The scheduler sees nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

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
    "SandboxHandle",
    "SandboxProcess",
    "SandboxSpec",
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
class SandboxSpec:
    """Everything a backend needs to create one agent's sandbox."""

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
    pool: str | None = None  # VM backends: serve from the warm pool of this name
    recipe: Path | None = None  # VM backends: the image recipe (rootfs/NAME.yaml)
    warm: int = 0
    pool_max: int = 8
    vm_memory_mib: int = 256  # VM backends: the guest's memory (the Image's memory_mib)
    vcpus: int = 1  # VM backends: the guest's virtual CPUs


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

"""A process on the other side of a boundary: how it ended and how to talk to it.

Below both the hypervisor layer (which starts processes in sandboxes and VMs) and
the transport layer (which speaks MCP over their pipes), so neither imports the other.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Protocol

#: Exit code of the sandbox helper when the sandbox itself could not be set up.
SETUP_FAILED = 125


@dataclass(frozen=True)
class ExecResult:
    """How a command in the sandbox ended."""

    exit_code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    out_of_memory: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """Whether the command exited 0 within its limits."""
        return self.exit_code == 0 and not (self.timed_out or self.out_of_memory)

    def failure(self) -> str | None:
        """One line saying why the command failed, or None if it did not."""
        if self.timed_out:
            return f"timed out after {self.duration:.1f}s; the sandbox was killed"
        if self.out_of_memory:
            return "killed: over its memory limit"
        if self.exit_code == SETUP_FAILED and self.stderr.startswith("luminaguard-sandbox:"):
            return self.stderr.strip().splitlines()[-1]
        if self.exit_code < 0 or self.exit_code > 128:
            signal = -self.exit_code if self.exit_code < 0 else self.exit_code - 128
            return f"killed by signal {signal}"
        if self.exit_code != 0:
            return f"exited with code {self.exit_code}"
        return None


class ByteWriter(Protocol):
    """Where a process's standard input goes (an ``asyncio.StreamWriter`` is one)."""

    def write(self, data: bytes) -> None:
        """Queue bytes."""
        ...

    async def drain(self) -> None:
        """Wait until queued bytes are sent."""
        ...

    def close(self) -> None:
        """End the input."""
        ...


class SandboxProcess(Protocol):
    """A process running in a sandbox: its pipes and its exit status."""

    @property
    def pid(self) -> int:
        """The pid of the process (group) that holds the sandbox."""
        ...

    @property
    def returncode(self) -> int | None:
        """The exit status once known, else None."""
        ...

    @property
    def stdin(self) -> ByteWriter | None:
        """Writes to the process's standard input."""
        ...

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        """Reads the process's standard output."""
        ...

    @property
    def stderr(self) -> asyncio.StreamReader | None:
        """Reads the process's standard error."""
        ...

    async def wait(self) -> int:
        """Wait for the process to end; return its exit status."""
        ...

    def kill(self) -> None:
        """Kill the process (and what it started in the sandbox)."""
        ...


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

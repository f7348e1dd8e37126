"""Running a sandboxed process to completion: capped output, a wall-clock timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from luminaguard.hypervisor.base import ExecResult, SandboxProcess

OUTPUT_LIMIT = 1 << 20  # bytes of stdout and of stderr kept per command


@dataclass(frozen=True)
class Completion:
    """What a finished (or killed) process left: status, output, whether it ran out of time."""

    exit_code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool
    truncated: bool

    def result(self, out_of_memory: bool = False) -> ExecResult:
        """The backend-neutral ExecResult of this completion."""
        return ExecResult(
            exit_code=self.exit_code,
            stdout=self.stdout,
            stderr=self.stderr,
            duration=self.duration,
            timed_out=self.timed_out,
            out_of_memory=out_of_memory,
            truncated=self.truncated,
        )


#: seconds the output may take to end once the process is killed: its pipes close as its
#: processes die, unless a process outside it holds them (one of another sandbox sharing
#: its /work, handed them over a Unix socket), which would keep the step from ending
DRAIN_SECONDS = 2.0


@dataclass
class Capped:
    """Output read so far: the first OUTPUT_LIMIT bytes, and whether more came."""

    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False


async def read_capped(stream: asyncio.StreamReader | None, into: Capped) -> None:
    """Read ``stream`` to its end into ``into``, keeping its first OUTPUT_LIMIT bytes."""
    if stream is None:
        return
    while chunk := await stream.read(65536):
        room = OUTPUT_LIMIT - len(into.data)
        if len(chunk) > room:
            into.truncated = True
        into.data += chunk[: max(room, 0)]


def _stop_reading(process: SandboxProcess) -> None:
    """Close the output pipes: whatever a process outside may still send is not read."""
    for stream in (process.stdout, process.stderr):
        transport = getattr(stream, "_transport", None)
        if transport is not None:
            transport.close()


async def _drain(reading: asyncio.Future[tuple[None, None]], process: SandboxProcess) -> None:
    """The rest of the output, awaited DRAIN_SECONDS at most (then the pipes are closed)."""
    try:
        await asyncio.wait_for(reading, DRAIN_SECONDS)
    except TimeoutError:  # held open from outside: stop reading what it may still send
        _stop_reading(process)


async def complete(
    process: SandboxProcess, timeout: float, kill: Callable[[], object]
) -> Completion:
    """Close stdin, collect output until exit; on timeout call ``kill`` and collect the rest.

    The rest (after the exit, or the timeout's kill) is awaited DRAIN_SECONDS at most:
    what was read by then is kept. A process of another sandbox sharing the step's /work
    may hold its output open (handed over a Unix socket): the step ends with its own
    process, not when that one lets go, nor with what it writes after.
    """
    started = time.monotonic()
    if process.stdin is not None:
        process.stdin.close()
    out, err = Capped(), Capped()
    reading = asyncio.gather(read_capped(process.stdout, out), read_capped(process.stderr, err))
    exited = asyncio.ensure_future(process.wait())
    both: set[asyncio.Future[Any]] = {reading, exited}
    await asyncio.wait(both, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if not exited.done():  # its output closed before it ended: the rest of its time
        await asyncio.wait({exited}, timeout=max(0.0, started + timeout - time.monotonic()))
    timed_out = not exited.done()
    if timed_out:
        kill()
    if not reading.done():
        await _drain(reading, process)
    code = await exited
    return Completion(
        exit_code=code,
        stdout=out.data.decode("utf-8", "replace"),
        stderr=err.data.decode("utf-8", "replace"),
        duration=time.monotonic() - started,
        timed_out=timed_out,
        truncated=out.truncated or err.truncated,
    )

"""Running a sandboxed process to completion: capped output, a wall-clock timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

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


async def read_capped(stream: asyncio.StreamReader | None) -> tuple[bytes, bool]:
    """Everything ``stream`` yields, keeping the first OUTPUT_LIMIT bytes; and whether it cut."""
    if stream is None:
        return b"", False
    data = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = OUTPUT_LIMIT - len(data)
        if len(chunk) > room:
            truncated = True
        data += chunk[: max(room, 0)]
    return bytes(data), truncated


async def complete(
    process: SandboxProcess, timeout: float, kill: Callable[[], object]
) -> Completion:
    """Close stdin, collect output until exit; on timeout call ``kill`` and collect the rest."""
    started = time.monotonic()
    if process.stdin is not None:
        process.stdin.close()
    reading = asyncio.gather(read_capped(process.stdout), read_capped(process.stderr))
    timed_out = False
    try:
        (out, out_cut), (err, err_cut) = await asyncio.wait_for(asyncio.shield(reading), timeout)
    except TimeoutError:
        timed_out = True
        kill()
        (out, out_cut), (err, err_cut) = await reading
    code = await process.wait()
    return Completion(
        exit_code=code,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        duration=time.monotonic() - started,
        timed_out=timed_out,
        truncated=out_cut or err_cut,
    )

"""``mcp_stdio``: an MCP server's stdio, the server started inside the agent's sandbox.

The hypervisor layer spawns the process; two pumps carry newline-delimited JSON-RPC
between its pipes and the SDK session's in-memory streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import mcp_types as types
from mcp import ClientSession
from mcp.shared.message import SessionMessage

from luminaguard.process import SandboxProcess
from luminaguard.transport.mcp_session import SessionClient
from luminaguard.transport.questions import Asker, GuardedSession, callbacks

#: Messages read from the server ahead of the session: one. A line may be large (the
#: spawning backend's reader caps it: 64 MiB), and a hostile server's lines queued here
#: would add up.
READ_AHEAD = 1


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        return exc


async def _pump_out(
    process: SandboxProcess,
    sink: anyio.abc.ObjectSendStream[SessionMessage | Exception],
    lost: asyncio.Event,
) -> None:
    """Carry the server's lines to the session.

    ``lost`` is set once stdout ends or carries a line over the limit, before the
    session sees the end.
    """
    assert process.stdout is not None
    async with sink:
        try:
            while True:
                try:
                    line = await process.stdout.readline()
                except (ValueError, asyncio.LimitOverrunError) as exc:
                    await sink.send(exc)
                    return
                if not line:
                    return
                if line.strip():
                    await sink.send(_parse(line))
        finally:
            lost.set()


async def _pump_in(
    process: SandboxProcess, source: anyio.abc.ObjectReceiveStream[SessionMessage]
) -> None:
    assert process.stdin is not None
    async with source:
        async for message in source:
            data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
            process.stdin.write(data.encode() + b"\n")
            await process.stdin.drain()


Starter = Callable[[], Awaitable[SandboxProcess]]


@contextlib.asynccontextmanager
async def _session(
    start: Starter, asker: Asker | None, lost: asyncio.Event
) -> AsyncIterator[ClientSession]:
    process = await start()
    to_session, session_reads = anyio.create_memory_object_stream[SessionMessage | Exception](
        READ_AHEAD
    )
    session_writes, to_server = anyio.create_memory_object_stream[SessionMessage](16)
    pumps = [
        asyncio.get_running_loop().create_task(_pump_out(process, to_session, lost)),
        asyncio.get_running_loop().create_task(_pump_in(process, to_server)),
    ]
    try:
        hooks = callbacks(asker)
        async with GuardedSession(session_reads, session_writes, **hooks) as session:
            yield session
    finally:
        for pump in pumps:
            pump.cancel()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()


def stdio_client(name: str, start: Starter, asker: Asker | None = None) -> SessionClient:
    """A not-yet-started client for the stdio server that ``start()`` launches.

    ``asker`` puts the server's questions (elicitation) to a person; without one, the
    client does not declare that it can ask.

    ``start`` is e.g. ``lambda: backend.spawn(sandbox, argv, env)`` (namespace sandbox)
    or ``lambda: guest.spawn(argv, env)`` (a guest agent inside a VM). Once the server
    exits, the client is no longer ``alive``: whoever holds it starts a new one.
    """
    return SessionClient(name, lambda lost: _session(start, asker, lost))

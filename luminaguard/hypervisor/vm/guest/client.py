"""The host side of the guest agent: requests over one stream, responses matched by id.

Processes the agent spawns (MCP stdio servers) come back as ``GuestProcess`` objects,
which look like a sandboxed process to the rest of LuminaGuard, so ``mcp_stdio`` runs
an MCP session over them unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import signal
from collections.abc import Awaitable
from typing import Any

from luminaguard.hypervisor.base import BackendError, ExecResult
from luminaguard.hypervisor.vm.guest.protocol import (
    VERSION,
    ProtocolError,
    decode,
    encode,
    frame_length,
)

KILLED = 128 + signal.SIGKILL


class GuestError(BackendError):
    """The guest agent could not be reached, went away, or answered with an error."""


class _GuestStdin:
    """A spawned process's stdin: writes are queued, ``drain`` sends them to the agent."""

    def __init__(self, agent: GuestAgent, stream: int) -> None:
        self.agent, self.stream = agent, stream
        self.queued = bytearray()

    def write(self, data: bytes) -> None:
        """Queue bytes for the process."""
        self.queued += data

    async def drain(self) -> None:
        """Send what is queued."""
        if self.queued:
            data, self.queued = bytes(self.queued), bytearray()
            await self.agent.request(
                "write", stream=self.stream, data=base64.b64encode(data).decode()
            )

    def close(self) -> None:
        """End the process's input (sent in the background)."""
        self.agent.background(self.agent.request("write", stream=self.stream, close=True))


class GuestProcess:
    """A process the guest agent started: its streams relayed over the agent's channel."""

    def __init__(self, agent: GuestAgent, stream: int) -> None:
        self.agent = agent
        self.stream = stream
        self.pid = 0
        self.stdin = _GuestStdin(agent, stream)
        self.stdout = asyncio.StreamReader(limit=64 << 20)
        self.stderr = asyncio.StreamReader(limit=64 << 20)
        self.returncode: int | None = None
        self._ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def event(self, message: dict[str, Any]) -> None:
        """Take an output or exit event for this process."""
        if message.get("event") == "output":
            target = self.stdout if message.get("fd") == 1 else self.stderr
            target.feed_data(base64.b64decode(message.get("data", "")))
        elif message.get("event") == "exit" and not self._ended.done():
            self.stdout.feed_eof()
            self.stderr.feed_eof()
            self.returncode = int(message.get("code", KILLED))
            self._ended.set_result(self.returncode)

    async def wait(self) -> int:
        """Its exit status."""
        return await asyncio.shield(self._ended)

    def kill(self) -> None:
        """Kill it (and its process group) inside the guest."""
        self.agent.background(self.agent.request("kill", stream=self.stream))


class GuestAgent:
    """A connection to one guest agent (one VM): exec, spawn, put, get, health, shutdown."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._processes: dict[int, GuestProcess] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: str | None = None
        self._pump = asyncio.get_running_loop().create_task(self._read())

    def background(self, work: Awaitable[Any]) -> None:
        """Run a request without waiting; a failure there shows as the channel's failure."""

        async def quietly() -> None:
            with contextlib.suppress(GuestError):
                await work

        task = asyncio.get_running_loop().create_task(quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _process(self, stream: int) -> GuestProcess:
        # output events may arrive before the spawn answer: whichever comes first creates it
        if stream not in self._processes:
            self._processes[stream] = GuestProcess(self, stream)
        return self._processes[stream]

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "event" in message:
            self._process(int(message.get("stream", 0))).event(message)
            return
        waiter = self._waiting.pop(message.get("id"), None)  # type: ignore[arg-type]
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    async def _read(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(4)
                self._dispatch(decode(await self.reader.readexactly(frame_length(header))))
        # a frame of the wrong shape ({"stream": "x"}, an unhashable id) ends the stream too:
        # else the reader dies alone and every later request waits out its timeout
        except (asyncio.IncompleteReadError, OSError, ProtocolError, TypeError, ValueError) as exc:
            self._failure = f"the guest agent's stream ended: {exc!r}"
        finally:
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(GuestError(self._failure or "the guest agent went away"))
            for process in self._processes.values():
                process.event({"event": "exit", "code": KILLED})

    async def request(self, op: str, wait: float = 30, **arguments: Any) -> dict[str, Any]:
        """Send one request and wait up to ``wait`` seconds for its result.

        Raises GuestError with the agent's message when it answers with an error, and
        when the stream has ended (also when that shows first as a failed write).
        """
        if self._failure:
            raise GuestError(self._failure)
        request_id = next(self._ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        try:
            self.writer.write(encode({"v": VERSION, "id": request_id, "op": op, **arguments}))
            await self.writer.drain()
        except OSError as exc:  # closed before the reader saw it (QEMU drops early connections)
            self._waiting.pop(request_id, None)
            raise GuestError(f"the guest agent's stream ended: {exc!r}") from exc
        try:
            answer = await asyncio.wait_for(waiter, wait)
        except TimeoutError as exc:
            self._waiting.pop(request_id, None)
            raise GuestError(f"guest agent: {op} got no answer within {wait:.0f}s") from exc
        if not answer.get("ok"):
            raise GuestError(f"guest agent: {op}: {answer.get('error')}")
        result = answer.get("result") or {}
        if not isinstance(result, dict):
            raise GuestError(f"guest agent: {op}: a result that is not an object")
        return result

    async def hello(self) -> dict[str, Any]:
        """Health: the agent's version, pid and work folder."""
        return await self.request("hello")

    async def exec(self, command: str, timeout: float, **options: Any) -> ExecResult:
        """Run a shell command in the guest's work folder with ``env``, limits and a timeout."""
        result = await self.request(
            "exec", timeout + 10, command=command, timeout=timeout, **options
        )
        return ExecResult(
            exit_code=int(result["exit_code"]),
            stdout=str(result["stdout"]),
            stderr=str(result["stderr"]),
            duration=float(result["duration"]),
            timed_out=bool(result["timed_out"]),
            truncated=bool(result["truncated"]),
        )

    async def spawn(
        self, argv: list[str], env: dict[str, str] | None = None, **limits: int
    ) -> GuestProcess:
        """Start a long-lived process in the guest (an MCP stdio server) and relay it."""
        result = await self.request("spawn", argv=argv, env=env or {}, **limits)
        process = self._process(int(result["stream"]))
        process.pid = int(result["pid"])
        return process

    async def reseed(self, wait: float = 30) -> str:
        """Fresh entropy and a new machine id for a clone; return the machine id.

        Each call draws new entropy and a new id (a retried reseed never repeats one).
        """
        entropy = base64.b64encode(os.urandom(64)).decode()
        machine_id = os.urandom(16).hex()
        result = await self.request("reseed", wait, entropy=entropy, machine_id=machine_id)
        return str(result["machine_id"])

    async def put(self, path: str, data: bytes) -> int:
        """Write a file into the guest's work folder."""
        return int(
            (await self.request("put", path=path, data=base64.b64encode(data).decode()))["size"]
        )

    async def get(self, path: str) -> bytes:
        """Read a file from the guest's work folder."""
        return base64.b64decode((await self.request("get", path=path))["data"])

    async def shutdown(self) -> None:
        """Ask the agent to exit, then close the stream."""
        with contextlib.suppress(GuestError):
            await self.request("shutdown", wait=5)
        await self.aclose()

    async def aclose(self) -> None:
        """Close the stream."""
        self._pump.cancel()
        self.writer.close()

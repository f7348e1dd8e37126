"""The host side of the guest agent: requests over one stream, responses matched by id."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from typing import Any

from luminaguard.hypervisor.base import ExecResult
from luminaguard.transport.base import TransportError
from luminaguard.transport.guest_protocol import (
    VERSION,
    ProtocolError,
    decode,
    encode,
    frame_length,
)


class GuestAgent:
    """A connection to one guest agent (one VM): exec, put, get, health, shutdown."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pump = asyncio.get_running_loop().create_task(self._read())
        self._failure: str | None = None

    async def _read(self) -> None:
        try:
            while True:
                body = await self.reader.readexactly(frame_length(await self.reader.readexactly(4)))
                message = decode(body)
                waiter = self._waiting.pop(message.get("id"), None)  # type: ignore[arg-type]
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError) as exc:
            self._failure = f"the guest agent's stream ended: {exc!r}"
        finally:
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(
                        TransportError(self._failure or "the guest agent went away")
                    )

    async def request(self, op: str, wait: float = 30, **arguments: Any) -> dict[str, Any]:
        """Send one request and wait up to ``wait`` seconds for its result.

        Raises TransportError with the agent's message when it answers with an error.
        """
        if self._failure:
            raise TransportError(self._failure)
        request_id = next(self._ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        self.writer.write(encode({"v": VERSION, "id": request_id, "op": op, **arguments}))
        await self.writer.drain()
        try:
            answer = await asyncio.wait_for(waiter, wait)
        except TimeoutError as exc:
            self._waiting.pop(request_id, None)
            raise TransportError(f"guest agent: {op} got no answer within {wait:.0f}s") from exc
        if not answer.get("ok"):
            raise TransportError(f"guest agent: {op}: {answer.get('error')}")
        return dict(answer.get("result") or {})

    async def hello(self) -> dict[str, Any]:
        """Health: the agent's version, pid and work folder."""
        return await self.request("hello")

    async def exec(self, command: str, timeout: float, **limits: int) -> ExecResult:
        """Run a shell command in the guest's work folder with limits and a timeout."""
        result = await self.request(
            "exec", timeout + 10, command=command, timeout=timeout, **limits
        )
        return ExecResult(
            exit_code=int(result["exit_code"]),
            stdout=str(result["stdout"]),
            stderr=str(result["stderr"]),
            duration=float(result["duration"]),
            timed_out=bool(result["timed_out"]),
            truncated=bool(result["truncated"]),
        )

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
        with contextlib.suppress(TransportError):
            await self.request("shutdown", wait=5)
        await self.aclose()

    async def aclose(self) -> None:
        """Close the stream."""
        self._pump.cancel()
        self.writer.close()

"""Driving the official MCP SDK's ClientSession over streams this package provides.

A session lives in a task of its own (anyio cancel scopes must be left by the task
that entered them); any task may then list and call tools through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import mcp_types as types
from mcp import ClientSession

from luminaguard.transport.base import HINTS, ToolInfo, ToolResult, TransportError
from luminaguard.transport.contents import content

_SNAKE = {"readOnlyHint": "read_only_hint", "destructiveHint": "destructive_hint",
          "idempotentHint": "idempotent_hint", "openWorldHint": "open_world_hint"}  # fmt: skip


def tool_info(tool: types.Tool) -> ToolInfo:
    """Our view of an SDK tool: only the hints the server actually gave."""
    annotations: dict[str, bool] = {}
    if tool.annotations is not None:
        for hint in HINTS:
            value = getattr(tool.annotations, _SNAKE[hint], None)
            if value is not None:
                annotations[hint] = bool(value)
    return ToolInfo(tool.name, tool.description or "", dict(tool.input_schema), annotations)


def tool_result(result: Any) -> ToolResult:
    """Text (joined), structured content, the error flag, other contents of a tools/call result."""
    if not isinstance(result, types.CallToolResult):
        raise TransportError(f"unexpected tools/call result: {type(result).__name__}")
    texts = [block.text for block in result.content if isinstance(block, types.TextContent)]
    contents = tuple(c for c in map(content, result.content) if c is not None)
    return ToolResult("\n".join(texts), result.structured_content, bool(result.is_error), contents)


async def all_tools(
    page: Callable[[str | None], Awaitable[types.ListToolsResult]],
) -> list[ToolInfo]:
    """Every tool of a server, fetching page after page (``page(cursor)``) until the last."""
    tools: list[ToolInfo] = []
    cursor: str | None = None
    while True:
        result = await page(cursor)
        tools += [tool_info(tool) for tool in result.tools]
        cursor = result.next_cursor
        if not cursor:
            return tools


#: Opens a session; the event it is given is to be set once the connection under the
#: session is gone (a stdio server that exited): the session is then dead for good.
SessionFactory = Callable[[asyncio.Event], contextlib.AbstractAsyncContextManager[ClientSession]]


class SessionClient:
    """A ToolClient over an SDK session that a dedicated task opens, holds and closes."""

    def __init__(self, name: str, factory: SessionFactory) -> None:
        self.name = name
        self._factory = factory
        self._session: ClientSession | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    @property
    def alive(self) -> bool:
        """Whether the session can still carry requests (false once its server is gone)."""
        return self._session is not None and not self._lost.is_set()

    async def _hold(self) -> None:
        try:
            async with self._factory(self._lost) as session:
                await session.initialize()
                self._session = session
                self._ready.set()
                await self._closing.wait()
        except BaseException as exc:  # reported to whoever waits for the session
            self._failure = exc
        finally:
            self._session = None
            self._ready.set()

    async def start(self, timeout: float) -> None:
        """Open the session and complete the MCP handshake."""
        self._task = asyncio.get_running_loop().create_task(self._hold())
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError as exc:
            await self.aclose()
            raise TransportError(
                f"MCP server {self.name!r} was not ready within {timeout:.0f}s"
            ) from exc
        if self._session is None:
            raise TransportError(f"MCP server {self.name!r} failed to start: {self._failure!r}")

    @contextlib.asynccontextmanager
    async def _use(self, what: str) -> AsyncIterator[ClientSession]:
        if self._session is None:
            raise TransportError(f"MCP server {self.name!r} is not connected ({self._failure!r})")
        try:
            yield self._session
        except TransportError:
            raise
        except Exception as exc:
            gone = " (the server stopped)" if self._lost.is_set() else ""
            raise TransportError(f"MCP server {self.name!r}: {what} failed{gone}: {exc}") from exc

    async def list_tools(self) -> list[ToolInfo]:
        """Every tool, following pagination."""
        async with self._use("tools/list") as session:

            def page(cursor: str | None) -> Awaitable[types.ListToolsResult]:
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                return session.list_tools(params=params)

            return await all_tools(page)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], timeout: float, idempotent: bool = False
    ) -> ToolResult:
        """Call a tool; a timeout or protocol error raises TransportError (never retried here)."""
        async with self._use(f"tools/call {name}") as session:
            try:
                result = await asyncio.wait_for(session.call_tool(name, arguments), timeout)
            except TimeoutError as exc:
                raise TransportError(f"tools/call {name} timed out after {timeout:.0f}s") from exc
            return tool_result(result)

    async def aclose(self) -> None:
        """Close the session (and with it the streams) from its own task."""
        self._closing.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 10)

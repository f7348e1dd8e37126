"""A real MCP server over Streamable HTTP on loopback (the SDK's MCPServer under uvicorn),
and a TCP proxy in front of it that can drop connections, for the HTTP transport tests."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp_types import (
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from starlette.types import ASGIApp, Receive, Scope, Send

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
PDF = b"%PDF-1.4 not really"
MEDIA: list[ContentBlock] = [
    TextContent(type="text", text="here"),
    ImageContent(type="image", data=base64.b64encode(PNG).decode(), mime_type="image/png"),
    EmbeddedResource(
        type="resource",
        resource=BlobResourceContents(
            uri="file:///etc/passwd",
            mime_type="application/pdf",
            blob=base64.b64encode(PDF).decode(),
        ),
    ),
    EmbeddedResource(
        type="resource",
        resource=TextResourceContents(uri="file:///../../x.sh", mime_type="text/x-sh", text="hi"),
    ),
    ImageContent(type="image", data="not base64!", mime_type="image/png"),
    ResourceLink(type="resource_link", name="x", uri="https://attacker.example/x"),
]


@dataclass
class Seen:
    """What the server saw: Authorization headers, tool calls."""

    authorization: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    requests: int = 0


class Recorder:
    """ASGI middleware that records request headers."""

    def __init__(self, app: ASGIApp, seen: Seen) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.requests += 1
            headers = dict(scope["headers"])
            if b"authorization" in headers:
                self.seen.authorization.append(headers[b"authorization"].decode())
        await self.app(scope, receive, send)


def build(seen: Seen) -> ASGIApp:
    server = MCPServer("test-http")
    counter = {"n": 0}
    values: dict[str, str] = {}

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    def echo(text: str) -> str:
        """Return the text."""
        seen.calls.append("echo")
        return text

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=False))
    def bump() -> int:
        """Add one to a counter (not idempotent)."""
        seen.calls.append("bump")
        counter["n"] += 1
        return counter["n"]

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True))
    def set_value(key: str, value: str) -> str:
        """Set a value (idempotent)."""
        seen.calls.append("set_value")
        values[key] = value
        return f"{key}={value}"

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True))
    async def hang(key: str) -> str:
        """Hang until the server stops, the first time only; then answer (idempotent)."""
        seen.calls.append("hang")
        if seen.calls.count("hang") == 1:
            await asyncio.Event().wait()  # never set: the server stops under the call
        return f"hung {key}"

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def media() -> CallToolResult:
        """An image, embedded resources (blob and text), a bad image, a link."""
        return CallToolResult(content=MEDIA)

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def whoami() -> str:
        """Echo the Authorization header this server received last."""
        return seen.authorization[-1] if seen.authorization else "nobody"

    return Recorder(server.streamable_http_app(host="127.0.0.1"), seen)


def free_socket(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class LiveServer:
    """The MCP server, serving in a thread until stopped."""

    def __init__(self, seen: Seen | None = None, port: int = 0) -> None:
        self.seen = seen or Seen()
        self.sock = free_socket(port)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(
                build(self.seen), log_level="warning", lifespan="on", timeout_graceful_shutdown=1
            )
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the test MCP server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class DroppingProxy:
    """Relays TCP to the server, but closes a connection carrying a tools/call while armed."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.drop_calls = 0
        self.dropped = 0
        self.loop = asyncio.new_event_loop()
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        inspect: bool,
        other: asyncio.StreamWriter,
    ) -> None:
        try:
            while data := await reader.read(65536):
                if inspect and self.drop_calls and b"tools/call" in data:
                    self.drop_calls -= 1
                    self.dropped += 1
                    writer.close()
                    other.close()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pump(client_r, server_w, True, client_w),
            self._pump(server_r, client_w, False, server_w),
        )

    def __enter__(self) -> DroppingProxy:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, sock=self.sock), self.loop
        ).result(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        async def cancel_relays() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_relays(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def closed_port_url() -> str:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/mcp"

"""``mcp_http``: MCP over Streamable HTTP, with retries, failover and round-robin.

Each endpoint gets its own MCP session (``initialize`` → ``Mcp-Session-Id``). A request
goes to the next healthy endpoint in turn. Connection errors and 408/429/5xx answers
are retried with exponential backoff and jitter; an endpoint that keeps failing is
marked unhealthy for a while and the request fails over to the next. When every
endpoint failed, the request is tried again, round after round with backoff, until
the policy's ``window`` (seconds since the request began) has passed: a server that
restarts within it is not given up on. A ``tools/call`` is retried or failed over
only when the tool is idempotent -- unless it was never sent (connection refused) or
refused for a session the server no longer knows (it restarted: the session is opened
again, once per request), which is safe for any request. Header values (bearer
tokens) are never logged or put in error messages.

Built on ``httpx2``, the HTTP client the official MCP SDK itself uses, rather than on
the SDK's streamable-HTTP transport: that transport binds one session to one URL and
owns its retries, while failover and per-call retry rules are what this layer is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
import mcp_types as types
import pydantic
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from luminaguard import __version__
from luminaguard.backoff import backoff
from luminaguard.transport.base import ToolInfo, ToolResult, TransportError
from luminaguard.transport.mcp_session import all_tools, tool_result

log = logging.getLogger(__name__)

_Result = TypeVar("_Result", bound=pydantic.BaseModel)

#: The largest answer read from a server, bytes (as a stdio server's line).
MAX_RESPONSE = 64 << 20
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class _NotSent(Exception):
    """The request never reached the server: safe to send elsewhere."""


class _Retryable(Exception):
    """The request may have reached the server and failed in a way worth retrying."""


class _StaleSession(Exception):
    """The server refused the request for a session it does not know (it restarted)."""


@dataclass
class Endpoint:
    """One URL of a server, its MCP session and its health."""

    url: str
    session_id: str | None = None
    initialized: bool = False
    unhealthy_until: float = 0.0

    def healthy(self, now: float) -> bool:
        """Whether the endpoint is not cooling down after failures."""
        return now >= self.unhealthy_until


@dataclass
class RetryPolicy:
    """How hard to try: attempts per endpoint, backoff, cool-down of a failed endpoint.

    ``window``: how long (seconds from its start) a request whose every endpoint failed
    is tried again, round after round, with the same backoff between rounds.
    """

    attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 2.0
    cooldown: float = 30.0
    timeout: float = 30.0
    window: float = 5.0

    def delay(self, attempt: int) -> float:
        """The wait before retry ``attempt``: exponential from ``base_delay``, jittered."""
        return backoff(attempt, self.base_delay, self.max_delay)


@dataclass
class HttpClient:
    """A ToolClient for a server reachable at one or more Streamable HTTP endpoints."""

    name: str
    endpoints: list[Endpoint]
    headers: dict[str, str] = field(default_factory=dict)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    _http: httpx2.AsyncClient = field(default_factory=httpx2.AsyncClient)
    _next: int = 0
    _ids: int = 0

    def _rotation(self) -> list[Endpoint]:
        """Every endpoint, starting with the next in turn, healthy ones first."""
        start = self._next % len(self.endpoints)
        self._next += 1
        ordered = self.endpoints[start:] + self.endpoints[:start]
        now = time.monotonic()
        return [e for e in ordered if e.healthy(now)] + [e for e in ordered if not e.healthy(now)]

    def _message(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        self._ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._ids, "method": method}
        if params is not None:
            message["params"] = params
        return message

    def _request_headers(self, endpoint: Endpoint) -> dict[str, str]:
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": LATEST_HANDSHAKE_VERSION,
        }
        if endpoint.session_id:
            headers["Mcp-Session-Id"] = endpoint.session_id
        return headers

    async def _capped(
        self, endpoint: Endpoint, message: dict[str, Any], timeout: float
    ) -> httpx2.Response:
        """POST ``message``; the response read whole, up to ``MAX_RESPONSE`` bytes.

        A server is hostile: a body (or an event stream that never ends) over the cap is
        a TransportError, read no further.
        """
        headers = self._request_headers(endpoint)
        request = self._http.build_request(
            "POST", endpoint.url, json=message, headers=headers, timeout=timeout
        )
        response = await self._http.send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE:
                    raise TransportError(
                        f"MCP server {self.name!r} at {endpoint.url}: the answer is over"
                        f" {MAX_RESPONSE} bytes"
                    )
        finally:
            await response.aclose()
        return httpx2.Response(
            response.status_code, headers=response.headers, content=bytes(body), request=request
        )

    async def _post(
        self, endpoint: Endpoint, message: dict[str, Any], timeout: float
    ) -> httpx2.Response:
        try:
            response = await self._capped(endpoint, message, timeout)
        except httpx2.ConnectError as exc:
            raise _NotSent(f"cannot connect to {endpoint.url}") from exc
        except (
            httpx2.TimeoutException,
            httpx2.ReadError,
            httpx2.RemoteProtocolError,
            httpx2.WriteError,
        ) as exc:
            raise _Retryable(f"{endpoint.url}: {type(exc).__name__}") from exc
        if response.status_code in RETRY_STATUS:
            raise _Retryable(f"{endpoint.url}: HTTP {response.status_code}")
        if _stale(response, endpoint):
            endpoint.session_id, endpoint.initialized = None, False  # the server forgot us
            raise _StaleSession(f"{endpoint.url}: HTTP {response.status_code}, session unknown")
        if response.status_code >= 400:
            raise TransportError(
                f"MCP server {self.name!r} at {endpoint.url}: HTTP {response.status_code}"
            )
        return response

    def _result(self, response: httpx2.Response, message_id: int) -> dict[str, Any]:
        try:
            answers = _messages(response)
        except ValueError as exc:  # the body's text stays out: it is the server's to choose
            kind = response.headers.get("content-type", "no content type")[:60]
            raise TransportError(
                f"MCP server {self.name!r} at {response.url}: the answer is not JSON-RPC "
                f"({kind}): {exc}"
            ) from exc
        for answer in answers:
            if answer.get("id") == message_id:
                if "error" in answer:
                    error = answer["error"]
                    said = error.get("message", error) if isinstance(error, dict) else error
                    raise TransportError(f"MCP server {self.name!r}: {said}")
                result = answer.get("result") or {}
                if not isinstance(result, dict):
                    raise TransportError(
                        f"MCP server {self.name!r}: a result that is not an object"
                    )
                return result
        raise _Retryable(f"{response.url}: no answer to request {message_id}")

    async def _ensure_session(self, endpoint: Endpoint) -> None:
        if endpoint.initialized:
            return
        params = {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "luminaguard", "version": __version__},
        }
        endpoint.session_id = None  # a new session: the old one's ID is not sent along
        message = self._message("initialize", params)
        response = await self._post(endpoint, message, self.policy.timeout)
        self._result(response, message["id"])
        endpoint.session_id = response.headers.get("mcp-session-id")
        notice = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await self._post(endpoint, notice, self.policy.timeout)
        endpoint.initialized = True

    async def _once(
        self, endpoint: Endpoint, method: str, params: dict[str, Any] | None, timeout: float
    ) -> dict[str, Any]:
        """One request; sent once more, in a new session, if the server forgot the session."""
        for fresh in (False, True):
            await self._ensure_session(endpoint)
            message = self._message(method, params)
            try:
                return self._result(await self._post(endpoint, message, timeout), message["id"])
            except _StaleSession as exc:
                if fresh:  # a session opened just now is not known either
                    raise _Retryable(str(exc)) from exc
                log.info("%s: %s; opening a new session", self.name, exc)
        raise AssertionError("unreachable")

    async def _on_endpoint(
        self,
        endpoint: Endpoint,
        method: str,
        params: dict[str, Any] | None,
        timeout: float,
        idempotent: bool,
    ) -> dict[str, Any]:
        for attempt in range(self.policy.attempts):
            try:
                return await self._once(endpoint, method, params, timeout)
            except _Retryable as exc:
                if not idempotent:
                    raise TransportError(
                        f"MCP server {self.name!r}: {method} failed ({exc}); not retried, as it "
                        "may have taken effect and the tool is not idempotent"
                    ) from exc
                log.info(
                    "%s: %s; retrying (%d/%d)", self.name, exc, attempt + 1, self.policy.attempts
                )
                if attempt + 1 < self.policy.attempts:
                    await asyncio.sleep(self.policy.delay(attempt))
        raise _NotSent(f"{endpoint.url} kept failing")

    async def _round(
        self, method: str, params: dict[str, Any] | None, timeout: float, idempotent: bool
    ) -> dict[str, Any] | list[str]:
        """The answer of the first endpoint that gives one, or why each failed."""
        failures: list[str] = []
        for endpoint in self._rotation():
            try:
                return await self._on_endpoint(endpoint, method, params, timeout, idempotent)
            except _NotSent as exc:
                endpoint.unhealthy_until = time.monotonic() + self.policy.cooldown
                endpoint.initialized = False
                failures.append(str(exc))
                log.info("%s: %s; failing over", self.name, exc)
        return failures

    async def request(
        self, method: str, params: dict[str, Any] | None, timeout: float, idempotent: bool
    ) -> dict[str, Any]:
        """One JSON-RPC request, routed, retried and failed over as the rules allow.

        Rounds over every endpoint are repeated, with backoff, within the policy's window.
        """
        deadline = time.monotonic() + self.policy.window
        for attempt in itertools.count():
            answer = await self._round(method, params, timeout, idempotent)
            if isinstance(answer, dict):
                return answer
            wait = min(self.policy.delay(attempt), deadline - time.monotonic())
            if wait <= 0:
                break
            log.info("%s: every endpoint failed; trying again in %.2fs", self.name, wait)
            await asyncio.sleep(wait)
        raise TransportError(
            f"MCP server {self.name!r}: every endpoint failed (retried for "
            f"{self.policy.window:g}s): {'; '.join(answer)}"
        )

    async def _tools_page(self, cursor: str | None) -> types.ListToolsResult:
        params = {"cursor": cursor} if cursor else None
        result = await self.request("tools/list", params, self.policy.timeout, True)
        return self._validated(types.ListToolsResult, result, "tools/list")

    async def list_tools(self) -> list[ToolInfo]:
        """Every tool, following pagination."""
        return await all_tools(self._tools_page)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], timeout: float, idempotent: bool = False
    ) -> ToolResult:
        """Call a tool; retried only if ``idempotent``."""
        result = await self.request(
            "tools/call", {"name": name, "arguments": arguments}, timeout, idempotent
        )
        return tool_result(self._validated(types.CallToolResult, result, f"tools/call {name}"))

    def _validated(self, model: type[_Result], result: dict[str, Any], what: str) -> _Result:
        """The result as ``model``; a TransportError when it does not fit the protocol."""
        try:
            return model.model_validate(result)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise TransportError(
                f"MCP server {self.name!r}: {what} answered outside the protocol: {problems}"
            ) from exc

    async def aclose(self) -> None:
        """End the sessions (DELETE, best effort) and close the connection pool."""
        for endpoint in self.endpoints:
            if endpoint.session_id:
                with contextlib.suppress(httpx2.HTTPError):
                    await self._http.delete(
                        endpoint.url, headers=self._request_headers(endpoint), timeout=5
                    )
        await self._http.aclose()


def _stale(response: httpx2.Response, endpoint: Endpoint) -> bool:
    """Whether the server refused our session: 404, or a 400 that names the session."""
    if not endpoint.session_id or response.status_code not in (400, 404):
        return False
    return response.status_code == 404 or b"session" in response.content[:4096].lower()


def _messages(response: httpx2.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a JSON or an SSE response body.

    ValueError when the body is not JSON, or a message in it is not a JSON object.
    """
    if response.status_code == 202 or not response.content:
        return []
    if "text/event-stream" in response.headers.get("content-type", ""):
        found = []
        for event in response.text.split("\n\n"):
            data = "\n".join(
                line[5:].lstrip() for line in event.splitlines() if line.startswith("data:")
            )
            if data:
                found.append(json.loads(data))
    else:
        body = json.loads(response.content)
        found = body if isinstance(body, list) else [body]
    if not all(isinstance(message, dict) for message in found):
        raise ValueError("a message that is not a JSON object")
    return found


async def http_client(
    name: str, urls: list[str], headers: dict[str, str], policy: RetryPolicy | None = None
) -> HttpClient:
    """A client for the endpoints ``urls`` (connected lazily, on the first request)."""
    return HttpClient(name, [Endpoint(url) for url in urls], dict(headers), policy or RetryPolicy())

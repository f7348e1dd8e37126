"""A client of ``luminaguard serve``: JSON calls and the event stream, standard library only.

Everything the server sends is untrusted text: this module parses it (bounded in size)
and never shows it; callers show it through ``visible``. A refused call raises
``RemoteError`` with the server's own message; a server that cannot be reached raises
it too, with status 0.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from luminaguard.errors import LuminaGuardError, UsageError

#: Seconds to wait for the answer to a call.
TIMEOUT = 30.0
#: Seconds an event stream may stay silent before it is read as ended (the caller
#: then asks for the run and reconnects with the last event id).
IDLE = 30.0
#: The largest answer read, in bytes, and the longest line of an event stream.
MAX_ANSWER = 16 << 20
MAX_LINE = 64 << 10
#: How much of a refusal's message and fields is kept.
MAX_MESSAGE = 2000
MAX_FIELDS = 20

_UNREACHABLE = (OSError, http.client.HTTPException, ssl.SSLError)


class RemoteError(LuminaGuardError):
    """The server refused a call (``status``), or could not be reached (``status`` 0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServerEvent:
    """One event of the stream: what changed (``kind``), in which run and step, when."""

    id: int
    kind: str
    run_id: str
    step_id: str | None
    state: str | None
    time: float | None = None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_event(last_id: str, data: str) -> ServerEvent | None:
    """The event of one ``data:`` payload (None for one that is not a server event)."""
    body = _json(data)
    if not isinstance(body, dict) or not _event_id(last_id):
        return None
    kind, run_id = _text(body.get("event")), _text(body.get("run_id"))
    if kind is None or run_id is None:
        return None
    when = body.get("time")
    return ServerEvent(
        int(last_id),
        kind,
        run_id,
        _text(body.get("step_id")),
        _text(body.get("state")),
        _seconds(when),
    )


def _json(data: str | bytes) -> Any:
    """``data`` parsed, or None: a server's text that is not JSON (or nests too deep)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _event_id(text: str) -> bool:
    # ASCII digits only: '\u00b2'.isdigit() is true, and int() refuses it
    return text.isascii() and text.isdigit() and len(text) <= 18


def _seconds(value: Any) -> float | None:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1 << 53:
        return float(value)
    return None


def refusal(status: int, raw: bytes) -> RemoteError:
    """The error for a refused call: the server's message and the fields it names."""
    body = _json(raw)
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return RemoteError(f"the server answered HTTP {status}", status)
    message = body["error"][:MAX_MESSAGE]
    fields = body.get("fields")
    for problem in fields[:MAX_FIELDS] if isinstance(fields, list) else []:
        if isinstance(problem, dict):
            message += f"; {problem.get('field')}: {problem.get('message')}"[:MAX_MESSAGE]
    return RemoteError(f"the server refused (HTTP {status}): {message}", status)


class EventStream:
    """An open ``GET /v1/events``: iterate for events; ends at EOF or after ``IDLE`` s."""

    def __init__(self, connection: http.client.HTTPConnection) -> None:
        self.connection = connection
        self.response = connection.getresponse()

    def _lines(self) -> Iterator[str]:
        try:
            while line := self.response.readline(MAX_LINE):
                yield line.decode("utf-8", "replace").rstrip("\r\n")
        except _UNREACHABLE:  # a timeout or a lost connection: the stream ends
            return

    def __iter__(self) -> Iterator[ServerEvent]:
        last_id, data = "", []
        for line in self._lines():
            if line:
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "id":
                    last_id = value
                elif field == "data":
                    data.append(value)
                continue
            event = parse_event(last_id, "\n".join(data)) if data else None
            data = []
            if event is not None:
                yield event

    def wait_open(self) -> None:
        """Read the stream's opening comment: the server is then sending every new event."""
        for line in self._lines():
            if not line:
                return
        raise RemoteError("the server closed the event stream at once")

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


class Remote:
    """The server at ``url`` (http or https), called with a bearer ``token``."""

    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT) -> None:
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            raise UsageError(f"--server must be an http:// or https:// URL, not {url!r}")
        self.url = url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, port
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            context = ssl.create_default_context()
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        headers = {"Accept": "application/json", **extra}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _unreachable(self, exc: BaseException) -> RemoteError:
        return RemoteError(f"cannot reach the server at {self.url}: {exc}")

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """The JSON answer to ``method path`` (with a JSON ``body``); RemoteError if refused."""
        payload = None if body is None else json.dumps(body).encode()
        headers = self._headers({"Content-Type": "application/json"} if payload else {})
        connection = self._connect(self.timeout)
        try:
            connection.request(method, self.prefix + path, payload, headers)
            response = connection.getresponse()
            raw = response.read(MAX_ANSWER + 1)
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from None
        finally:
            connection.close()
        if response.status >= 400:
            raise refusal(response.status, raw)
        answer = _json(raw) if len(raw) <= MAX_ANSWER else None
        if not isinstance(answer, dict):
            raise RemoteError(f"the server's answer to {method} {path} is not a JSON object")
        return answer

    def events(self, after: int | None = None, idle: float = IDLE) -> EventStream:
        """The event stream, open (from now on; first the events after ``after``, if given)."""
        headers = self._headers({"Accept": "text/event-stream"})
        if after is not None:
            headers["Last-Event-ID"] = str(after)
        connection = self._connect(idle)
        try:
            connection.request("GET", self.prefix + "/v1/events", headers=headers)
            stream = EventStream(connection)
            if stream.response.status != 200:
                raise refusal(stream.response.status, stream.response.read(MAX_ANSWER))
            stream.wait_open()
        except _UNREACHABLE as exc:
            connection.close()
            raise self._unreachable(exc) from None
        except RemoteError:
            connection.close()
            raise
        return stream


def quoted(name: str) -> str:
    """A run or step id as one path segment."""
    return urllib.parse.quote(name, safe="")

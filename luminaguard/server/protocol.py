"""uvicorn's HTTP/1.1 protocol with a deadline for each request's head.

uvicorn closes a connection idle between requests (keep-alive timeout) but waits for
ever for a request's head once its first bytes arrived. A few hundred connections that
send half a request line and stop, no token needed, then hold every file descriptor
of the server: nothing else is accepted, not an approval, not ``/healthz``. Here a
connection must complete each request's head within ``HEAD_TIMEOUT`` seconds of
opening (or of its previous response), or it is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

#: Seconds a client has to send a request's whole head.
HEAD_TIMEOUT = 5.0


class HeadDeadline(H11Protocol):
    """H11Protocol closing a connection whose request head does not arrive in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accept the connection; its first request's head is now due."""
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def handle_events(self) -> None:
        """Handle what arrived; a request under way has its head: no deadline."""
        super().handle_events()
        if self._in_request():
            self._disarm()

    def on_response_complete(self) -> None:
        """The response is sent: the next request's head is due."""
        super().on_response_complete()
        if not self.transport.is_closing() and not self._in_request():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._head = self.loop.call_later(HEAD_TIMEOUT, self._expired)

    def _disarm(self) -> None:
        if self._head is not None:
            self._head.cancel()
            self._head = None

    def _expired(self) -> None:
        self._head = None
        if not self._in_request() and not self.transport.is_closing():
            self.transport.close()

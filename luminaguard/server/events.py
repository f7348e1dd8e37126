"""``EventHub``: step, approval and run changes, read from the audit log, sent to listeners.

Every state change is an audit record, whoever made it (this server, or a command on
the same state folder), so the audit log is the one source of events: the hub reads
the records past the last one it sent (after each commit here, and when the folder
changed elsewhere) and hands each to every subscriber. An event's id is its audit
sequence number, so a client that reconnects with ``Last-Event-ID`` misses nothing.

An event says what changed and where (run, step, new state), never the record's data:
arguments and outputs come from the API, to a caller allowed to read them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from luminaguard.scheduler.store import RunStore

#: The audit events that are sent (prefixes).
KINDS = ("run.", "step.", "approval.", "question.", "gitops.")
#: Events a slow subscriber may have waiting before it is dropped (it reconnects).
BACKLOG = 1000
#: How many past events are read from the log at once (for a reconnecting subscriber).
REPLAY = 1000


@dataclass(frozen=True)
class Event:
    """One change: its audit sequence number, kind, run, step and new state."""

    id: int
    time: float
    kind: str
    run_id: str
    step_id: str | None
    state: str | None

    def as_json(self) -> dict[str, Any]:
        """The event as sent."""
        return {
            "id": self.id,
            "time": self.time,
            "event": self.kind,
            "run_id": self.run_id,
            "step_id": self.step_id,
            "state": self.state,
        }


_QUERY = (
    "SELECT seq, time, run_id, step_id, event, json_extract(data, '$.state') FROM audit"
    " WHERE seq > ? AND (event LIKE 'run.%' OR event LIKE 'step.%' OR event LIKE 'approval.%'"
    " OR event LIKE 'question.%' OR event LIKE 'gitops.%')"
    " ORDER BY seq LIMIT ?"
)


class EventHub:
    """Reads new audit records of one store and fans them out to subscribers."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        row = store.db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()
        self.last = int(row[0])
        self.subscribers: set[asyncio.Queue[Event | None]] = set()
        self.closed = False
        #: called with each event as it is sent (metrics)
        self.listeners: list[Callable[[Event], None]] = []
        self.sent = 0

    def read(self, after: int, limit: int | None = None) -> list[Event]:
        """The events recorded after sequence number ``after`` (at most ``limit``, or REPLAY)."""
        rows = self.store.db.execute(_QUERY, (after, limit or REPLAY)).fetchall()
        return [
            Event(int(r[0]), float(r[1]), str(r[4]), str(r[2]), r[3], _state(r[4], r[5]))
            for r in rows
        ]

    def poll(self) -> None:
        """Send every event recorded since the last poll."""
        while True:
            events = self.read(self.last)
            if not events:
                return
            self.last = events[-1].id
            for event in events:
                self._send(event)

    def _send(self, event: Event) -> None:
        self.sent += 1
        for listener in self.listeners:
            listener(event)
        for queue in list(self.subscribers):
            if queue.qsize() < BACKLOG:
                queue.put_nowait(event)
            else:  # too slow: dropped; it reconnects with Last-Event-ID
                # it ends after the events it has waiting, so the id it reconnects with
                # is that of the event just before this one: it misses none
                self.subscribers.discard(queue)
                queue.put_nowait(None)  # the slot kept for the end

    async def subscribe(
        self, after: int | None = None, idle: float | None = None
    ) -> AsyncIterator[Event | None]:
        """Every event from now on (and first those after ``after``, when given).

        With ``idle``, None each time that many seconds pass without an event (for a
        keep-alive). Ends at once when the hub is closed.
        """
        if self.closed:
            return
        queue: asyncio.Queue[Event | None] = asyncio.Queue(BACKLOG + 1)  # and the end
        self.subscribers.add(queue)
        try:
            last = self.last
            while after is not None and after < last:  # the past, a page at a time
                page = [event for event in self.read(after) if event.id <= last]
                for event in page:
                    yield event
                after = page[-1].id if page else None
            while True:
                try:
                    sent = await asyncio.wait_for(queue.get(), idle)
                except TimeoutError:
                    yield None
                    continue
                if sent is None:
                    return
                if sent.id > last:  # not replayed already
                    yield sent
        finally:
            self.subscribers.discard(queue)

    def close(self) -> None:
        """End every subscription; later ones end at once."""
        self.closed = True
        for queue in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self.subscribers.clear()


def _state(event: str, state: Any) -> str | None:
    if isinstance(state, str):
        return state
    if event.startswith(("run.", "approval.")):  # run.halted, approval.approved, ...
        return event.split(".", 1)[1]
    return None

"""``RemoteDesk``: the approval queue of a running ``luminaguard serve``.

The queue reads ``GET /v1/approvals`` and ``GET /v1/questions`` again whenever the
server's event stream (``/v1/events``, followed by a thread) reports a change, and at
least every ``REFRESH`` seconds in case the stream is down. Decisions are the API's:
approve and deny bound to the action hash the card showed, answer and decline; the
server records them as its token's name and checks them as it checks any client's.
Everything the server sends is untrusted: an item that is not what the API describes
is counted and left out; texts are shown through ``visible`` by the queue.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.text import Text

from luminaguard.hostile_text import visible
from luminaguard.scheduler.audit import AuditRecord
from luminaguard.scheduler.questions import QuestionRecord, QuestionState
from luminaguard.scheduler.states import ApprovalState
from luminaguard.scheduler.store import ApprovalRecord
from luminaguard.transport.forms import KINDS, Field, Form, Value
from luminaguard.ui import approval_queue as queue
from luminaguard.ui.desk import Loaded, where
from luminaguard.ui.remote import EventStream, Remote, RemoteError, quoted

#: Seconds between reloads when the event stream says nothing (it may be down).
REFRESH = 30.0
#: Seconds before the event stream is opened again after it failed.
RETRY = 2.0
#: Seconds ``stop`` waits for the thread to end.
STOP = 5.0
_UNREADABLE = (KeyError, TypeError, ValueError, AttributeError)


def request_of(item: Any) -> ApprovalRecord:
    """An approval request as ``GET /v1/approvals`` lists it (``KeyError`` etc. if not one)."""
    card = dict(item["card"])
    card["min_approvals"] = int(item.get("min_approvals", 1))
    card["approved_by"] = [str(name) for name in item.get("approved_by") or []]
    return ApprovalRecord(
        str(item["run_id"]), str(item["step_id"]), str(item["action_hash"]),
        ApprovalState.PENDING, card, float(item["requested"]), float(item["expires"]),
        None, None, None,
    )  # fmt: skip


def _bound(value: Any) -> float | None:
    return None if value is None else float(value)


def field_of(spec: Any) -> Field:
    """A form's field as the API shows it (``ValueError`` for an unknown kind)."""
    kind = str(spec["kind"])
    if kind not in KINDS:
        raise ValueError(f"field kind {kind[:40]!r}")
    default = spec.get("default")
    return Field(
        name=str(spec["name"]),
        kind=kind,
        title=str(spec.get("title") or ""),
        description=str(spec.get("description") or ""),
        required=bool(spec.get("required")),
        choices=tuple(str(choice) for choice in spec.get("choices") or ()),
        minimum=_bound(spec.get("minimum")),
        maximum=_bound(spec.get("maximum")),
        default=default if isinstance(default, str | int | float | bool | list) else None,
    )


def question_of(item: Any) -> QuestionRecord:
    """A question as ``GET /v1/questions`` lists it."""
    form = Form(tuple(field_of(spec) for spec in item["fields"]))
    step = item.get("step_id")
    return QuestionRecord(
        str(item["run_id"]), str(item["question_id"]), None if step is None else str(step),
        str(item["server"]), QuestionState.PENDING, str(item["message"]), form,
        float(item["asked"]), float(item["expires"]), None, None,
    )  # fmt: skip


def _parsed(items: Any, parse: Callable[[Any], Any]) -> tuple[list[Any], int]:
    parsed, unreadable = [], 0
    for item in items if isinstance(items, list) else []:
        try:
            parsed.append(parse(item))
        except _UNREADABLE:
            unreadable += 1
    return parsed, unreadable


def outcome(request: ApprovalRecord, decided: dict[str, Any]) -> str:
    """What the server recorded, in one line."""
    at = f"{request.run_id} {request.step_id}"
    by, verdict = decided.get("by"), decided.get("verdict")
    if verdict == "counted":
        names = ", ".join(str(name) for name in decided.get("approved_by") or [])
        needed = decided.get("needed")
        return visible(
            f"{at}: approval by {by} counted; {needed} more needed (approved by {names})"
        )
    return visible(f"{at}: {verdict} by {by} ({str(decided.get('action_hash'))[:19]})")


class Watcher:
    """A thread following the event stream; ``changed`` says whether anything came."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.news = threading.Event()
        self.news.set()
        self.stopping = threading.Event()
        self.stream: EventStream | None = None
        self.thread = threading.Thread(target=self._follow, name="lg-events", daemon=True)

    def start(self) -> None:
        """Follow the stream until ``stop``."""
        self.thread.start()

    def _follow(self) -> None:
        last: int | None = None
        while not self.stopping.is_set():
            try:
                self.stream = self.remote.events(after=last)
            except RemoteError:
                self.news.set()  # reload: the queue says what the server answers now
                self.stopping.wait(RETRY)
                continue
            self.news.set()  # (re)connected: what happened meanwhile is read again
            for event in self.stream:
                last = event.id
                self.news.set()
            self.stream.close()
            if not self.stopping.is_set():
                self.stopping.wait(RETRY / 10)  # a server that ends streams at once

    def changed(self) -> bool:
        """Whether an event came since the last call."""
        came = self.news.is_set()
        self.news.clear()
        return came

    def stop(self) -> None:
        """End the thread: its stream's socket is shut, the thread sees the end and closes it.

        (Closing the connection here instead would pull it from under the reading thread:
        ``http.client`` is not thread-safe.)
        """
        self.stopping.set()
        stream = self.stream
        sock = None if stream is None else stream.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self.thread.is_alive():
            self.thread.join(STOP)


class RemoteDesk:
    """A server's queue: see the module's docstring."""

    def __init__(self, remote: Remote, clock: Callable[[], float] = time.monotonic) -> None:
        self.remote, self.clock = remote, clock
        self.watcher = Watcher(remote)
        self.loaded_at = -REFRESH

    def start(self) -> None:
        """Start following the server's events."""
        self.watcher.start()

    def close(self) -> None:
        """Stop following them."""
        self.watcher.stop()

    def changed(self) -> bool:
        """Whether the server reported a change (or the last reload is ``REFRESH`` s old)."""
        due = self.clock() - self.loaded_at >= REFRESH
        return self.watcher.changed() or due

    def load(self, now: float) -> Loaded:
        """The server's pending requests and questions, those still within their time."""
        self.loaded_at = self.clock()
        requests, bad = _parsed(
            self.remote.call("GET", "/v1/approvals").get("approvals"), request_of
        )
        questions, worse = _parsed(
            self.remote.call("GET", "/v1/questions").get("questions"), question_of
        )
        notes = (
            [f"{bad + worse} items from the server not shown: unreadable"] if bad + worse else []
        )
        return Loaded(
            [r for r in requests if now <= r.expires],
            [q for q in questions if now <= q.expires],
            notes,
        )

    def _decide(self, request: ApprovalRecord, verb: str, reason: str | None) -> str:
        path = f"/v1/approvals/{quoted(request.run_id)}/{quoted(request.step_id)}/{verb}"
        body = {"action_hash": request.action_hash, "reason": reason}
        return outcome(request, self.remote.call("POST", path, body))

    def approve(self, request: ApprovalRecord) -> str:
        """Approve on the server, bound to the hash shown."""
        return self._decide(request, "approve", None)

    def deny(self, request: ApprovalRecord, reason: str) -> str:
        """Deny on the server, bound to the hash shown."""
        return self._decide(request, "deny", reason)

    def _reply(self, question: QuestionRecord, verb: str, body: dict[str, Any]) -> str:
        path = f"/v1/questions/{quoted(question.run_id)}/{quoted(question.question_id)}/{verb}"
        done = self.remote.call("POST", path, body)
        return visible(
            f"{where(question)}: question of {question.server} {done.get('state')} by"
            f" {done.get('by')}"
        )

    def answer(self, question: QuestionRecord, content: dict[str, Value]) -> str:
        """Answer on the server (it checks the answer against the audited form again)."""
        return self._reply(question, "answer", {"content": content})

    def decline(self, question: QuestionRecord, reason: str | None) -> str:
        """Decline on the server."""
        return self._reply(question, "decline", {"reason": reason})

    def trail(self, run_id: str) -> Text:
        """The run's audit records as the server lists them."""
        answer = self.remote.call("GET", f"/v1/runs/{quoted(run_id)}/audit")
        records, _ = _parsed(answer.get("records"), lambda r: _record(run_id, r))
        return queue.audit_trail(records)


def _record(run_id: str, item: Any) -> AuditRecord:
    step = item.get("step_id")
    return AuditRecord(
        int(item["seq"]), float(item["time"]), run_id, None if step is None else str(step),
        str(item["event"]), dict(item["data"]), "", "",
    )  # fmt: skip

"""Where the approval queue reads what waits and records decisions: a ``Desk``.

``LocalDesk`` is the state folder itself (its ``RunStore``): the queue polls the
store's ``data_version``, records expiries as ``approve`` does, and decides through
``decisions`` and ``QuestionBook`` as the person running it. ``remote_desk.RemoteDesk``
is a running ``luminaguard serve``. Nothing here imports Textual. Each method that
decides returns the status line to show (``visible`` text) or raises
``LuminaGuardError`` (``FormError`` for an answer the form refuses).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from rich.text import Text

from luminaguard.hostile_text import visible
from luminaguard.scheduler import decisions
from luminaguard.scheduler.questions import QuestionBook, QuestionRecord
from luminaguard.scheduler.store import ApprovalRecord, RunStore
from luminaguard.transport.forms import Value
from luminaguard.ui import approval_queue as queue
from luminaguard.ui import question_queue as asked


@dataclass(frozen=True)
class Loaded:
    """What waits: the pending requests and questions, and lines for the status bar."""

    requests: list[ApprovalRecord]
    questions: list[QuestionRecord]
    notes: list[str] = field(default_factory=list)


class Desk(Protocol):
    """What the queue needs of where the requests and questions are."""

    def changed(self) -> bool:
        """Whether something may have changed since the last call (then the queue reloads)."""

    def load(self, now: float) -> Loaded:
        """What waits now."""

    def approve(self, request: ApprovalRecord) -> str:
        """Approve the request, bound to its action hash."""

    def deny(self, request: ApprovalRecord, reason: str) -> str:
        """Deny the request, bound to its action hash."""

    def answer(self, question: QuestionRecord, content: dict[str, Value]) -> str:
        """Answer the question."""

    def decline(self, question: QuestionRecord, reason: str | None) -> str:
        """Decline the question."""

    def trail(self, run_id: str) -> Text:
        """The run's audit trail, a line a record."""

    def close(self) -> None:
        """The queue is closing."""


def where(question: QuestionRecord) -> str:
    """A question's run and step, as the status bar names them."""
    return visible(f"{question.run_id} {question.step_id or '-'}")


class LocalDesk:
    """The state folder: see the module's docstring."""

    def __init__(
        self,
        store: RunStore,
        who: str,
        clock: Callable[[], float] = time.time,
        role: str | None = None,
    ) -> None:
        self.store, self.who, self.clock = store, who, clock
        self.role = role  # of who's token, if any: it matches ``role:NAME`` approvers
        self.book = QuestionBook(store)
        store.changed_elsewhere()

    def changed(self) -> bool:
        """Whether another connection committed since the last call."""
        return self.store.changed_elsewhere()

    def load(self, now: float) -> Loaded:
        """The pending requests (the expired ones recorded so) and questions, as audited."""
        found, questions = queue.load(self.store, now), asked.load(self.book, now)
        notes = []
        if found.expired:
            names = ", ".join(f"{r.run_id} {r.step_id}" for r in found.expired)
            notes.append(f"expired (denied on resume): {names}")
        if found.unaudited or questions.unaudited:
            notes.append(
                f"{found.unaudited + questions.unaudited} requests not shown:"
                " no authentic audit record (runs.db edited?)"
            )
        return Loaded(found.pending, questions.pending, notes)

    def approve(self, request: ApprovalRecord) -> str:
        """Approve as ``who`` (with ``role``), bound to the hash shown."""
        approve = queue.approver(self.store, self.who, self.clock, self.role)
        return queue.outcome(request, approve(request))

    def deny(self, request: ApprovalRecord, reason: str) -> str:
        """Deny as ``who``, bound to the hash shown."""
        r = request
        done = decisions.deny(
            self.store, r.run_id, r.step_id, self.who, reason, r.action_hash, self.role
        )
        return queue.outcome(request, done)

    def answer(self, question: QuestionRecord, content: dict[str, Value]) -> str:
        """Record ``who``'s answer (checked against the audited form)."""
        self.book.answer(question.run_id, question.question_id, self.who, content, self.clock)
        return f"{where(question)}: question of {visible(question.server)} answered by {self.who}"

    def decline(self, question: QuestionRecord, reason: str | None) -> str:
        """Record that ``who`` declined."""
        self.book.decline(question.run_id, question.question_id, self.who, reason)
        return f"{where(question)}: question of {visible(question.server)} declined by {self.who}"

    def trail(self, run_id: str) -> Text:
        """The run's audit records."""
        return queue.audit_trail(self.store.audit.records(run_id))

    def close(self) -> None:
        """Nothing to do: whoever opened the store closes it."""

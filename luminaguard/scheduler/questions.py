"""``QuestionBook``: questions MCP servers ask a person, kept beside the approval requests.

A question is asked while a tool call runs; the runner that made the call waits for
the reply (``asking``). Each question is a row of ``questions`` in runs.db and its
audit records: ``question.asked`` (the server, the message, the parsed form, the
expiry), then exactly one of ``question.answered`` (who, the checked content),
``question.declined`` (who, why), ``question.expired`` or ``question.cancelled``.
A move happens only from pending, checked inside the transaction that makes it, so
two people cannot both answer. What is checked or sent -- the form an answer must
fit, the reply the server gets -- is read from the authentic audit records, never
from the row alone (runs.db may be edited).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from luminaguard.errors import UsageError
from luminaguard.scheduler.states import StateError
from luminaguard.transport.forms import Field, Form, FormError, Value
from luminaguard.transport.reply import Action, Reply

if TYPE_CHECKING:
    from luminaguard.scheduler.audit import AuditRecord
    from luminaguard.scheduler.store import RunStore

_COLUMNS = (
    "run_id, question_id, step_id, server, state, message, form, asked, expires, decided, who"
)
_CLOSE = "UPDATE questions SET state = ?, decided = ?, who = ? WHERE run_id = ? AND question_id = ?"


class QuestionState(enum.StrEnum):
    """Where a question stands: pending, then closed one way for good."""

    PENDING = "pending"
    ANSWERED = "answered"
    DECLINED = "declined"  # by a person
    EXPIRED = "expired"  # nobody answered in time: the server is told "decline"
    CANCELLED = "cancelled"  # the tool call ended (or its runner stopped) first


#: What the server is told for each way a question closes.
_ACTIONS: dict[QuestionState, Action] = {
    QuestionState.ANSWERED: "accept",
    QuestionState.DECLINED: "decline",
    QuestionState.EXPIRED: "decline",
    QuestionState.CANCELLED: "cancel",
}
_CLOSING = tuple(f"question.{state}" for state in _ACTIONS)


@dataclass(frozen=True)
class QuestionRecord:
    """One question as stored: whose, from which server, what it asks, where it stands."""

    run_id: str
    question_id: str
    step_id: str | None
    server: str
    state: QuestionState
    message: str
    form: Form
    asked: float
    expires: float
    decided: float | None
    who: str | None

    def to_json(self) -> dict[str, Any]:
        """The question as the API and the web page show it."""
        return {
            "run_id": self.run_id, "question_id": self.question_id, "step_id": self.step_id,
            "server": self.server, "state": str(self.state), "message": self.message,
            "fields": self.form.to_json(), "asked": self.asked, "expires": self.expires,
            "decided": self.decided, "who": self.who,
        }  # fmt: skip


def form_of(fields: list[dict[str, Any]]) -> Form:
    """The form as stored (the JSON of its fields)."""
    made = []
    for spec in fields:
        spec = {**spec, "choices": tuple(spec.get("choices") or ())}
        made.append(Field(**spec))
    return Form(tuple(made))


class QuestionBook:
    """The questions of one state folder (its ``RunStore``)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def ask(
        self,
        run_id: str,
        step_id: str | None,
        server: str,
        message: str,
        form: Form,
        expires: float,
    ) -> QuestionRecord:
        """Record a new pending question; the question as recorded."""
        question_id = "q-" + secrets.token_hex(6)
        fields, now = form.to_json(), time.time()
        redact = self.store.audit.redact  # runs.db holds no secret, as the audit log
        row = (run_id, question_id, step_id, server, QuestionState.PENDING,
               redact.value(message), json.dumps(redact.value(fields)), now, expires,
               None, None)  # fmt: skip
        record = {"question_id": question_id, "server": server, "message": message,
                  "fields": fields, "expires": expires}  # fmt: skip
        self.store._write(
            [(f"INSERT INTO questions ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)],
            (run_id, step_id, "question.asked", record),
        )
        return self.get(run_id, question_id)

    def get(self, run_id: str, question_id: str) -> QuestionRecord:
        """One question (``UsageError`` if there is none)."""
        found = self._select("WHERE run_id = ? AND question_id = ?", (run_id, question_id))
        if not found:
            raise UsageError(f"run {run_id!r} has no question {question_id!r}")
        return found[0]

    def pending(self, run_id: str | None = None) -> list[QuestionRecord]:
        """The questions nobody has answered yet, oldest first (of one run, or all)."""
        where, params = "WHERE state = ?", (str(QuestionState.PENDING),)
        params_t: tuple[str, ...] = params
        if run_id is not None:
            where, params_t = where + " AND run_id = ?", (*params, run_id)
        return self._select(where, params_t)

    def asked_by(self, run_id: str, server: str) -> int:
        """How many questions ``server`` asked in the run, in all."""
        query = "SELECT COUNT(*) FROM questions WHERE run_id = ? AND server = ?"
        return int(self.store.db.execute(query, (run_id, server)).fetchone()[0])

    def _select(self, where: str, params: tuple[Any, ...]) -> list[QuestionRecord]:
        query = f"SELECT {_COLUMNS} FROM questions {where} ORDER BY asked"
        rows = self.store.db.execute(query, params).fetchall()
        return [_record(row) for row in rows]

    def answer(
        self,
        run_id: str,
        question_id: str,
        who: str,
        content: object,
        clock: Callable[[], float] = time.time,
    ) -> dict[str, Value]:
        """Record ``who``'s answer; the checked content (``FormError`` if the form refuses it).

        The form is the audited one. An answer after the expiry expires the question.
        """
        asked = self.asked(run_id, question_id)
        form = form_of(list(asked.data.get("fields") or []))
        answer = form.check(content)
        if clock() > float(asked.data.get("expires", 0)):
            self.close(run_id, question_id, QuestionState.EXPIRED, "luminaguard", "too late")
            raise StateError(f"{question_id}: the question expired before the answer came")
        data = {"question_id": question_id, "who": who, "content": answer}
        self._close(run_id, question_id, QuestionState.ANSWERED, who, data)
        return answer

    def decline(self, run_id: str, question_id: str, who: str, reason: str | None) -> None:
        """Record that ``who`` declined to answer."""
        self.asked(run_id, question_id)
        self.close(run_id, question_id, QuestionState.DECLINED, who, reason)

    def close(
        self, run_id: str, question_id: str, state: QuestionState, who: str, why: str | None
    ) -> None:
        """Close a pending question without an answer (declined, expired, cancelled)."""
        data = {"question_id": question_id, "who": who, "reason": why}
        self._close(run_id, question_id, state, who, data)

    def cancel_all(self, run_id: str, why: str) -> None:
        """Cancel every pending question of the run (its tool calls ended)."""
        for question in self.pending(run_id):
            try:
                self.close(
                    run_id, question.question_id, QuestionState.CANCELLED, "luminaguard", why
                )
            except StateError:
                continue  # answered meanwhile: nobody is waiting for it any more

    def _close(
        self,
        run_id: str,
        question_id: str,
        state: QuestionState,
        who: str,
        data: dict[str, Any],
    ) -> None:
        step_id = self.get(run_id, question_id).step_id

        def still_pending() -> None:
            row = self.store.db.execute(
                "SELECT state FROM questions WHERE run_id = ? AND question_id = ?",
                (run_id, question_id),
            ).fetchone()
            if row is None or row[0] != QuestionState.PENDING:
                now = row[0] if row else "gone"
                raise StateError(f"{question_id}: the question is {now}, not pending")

        self.store._write(
            [(_CLOSE, (state, time.time(), who, run_id, question_id))],
            (run_id, step_id, f"question.{state}", data),
            guards=(still_pending,),
        )

    def asked(self, run_id: str, question_id: str) -> AuditRecord:
        """The authentic ``question.asked`` record (``UsageError`` if there is none)."""
        step_id = self.get(run_id, question_id).step_id
        for record in self.store.audit.records(run_id, step_id, "question.asked"):
            mine = record.data.get("question_id") == question_id
            if mine and self.store.audit.authentic(record):
                return record
        raise UsageError(
            f"{question_id}: the question has no authentic audit record (runs.db was edited)"
        )

    def audited(self, question: QuestionRecord) -> QuestionRecord:
        """The question with the server, message, form and expiry of its audit record.

        ``UsageError`` when it has no authentic one (runs.db was edited): not to be shown.
        """
        data = self.asked(question.run_id, question.question_id).data
        try:
            form = form_of(list(data.get("fields") or []))
        except (TypeError, ValueError):
            raise UsageError(f"{question.question_id}: its audited form is unreadable") from None
        return dataclasses.replace(
            question,
            server=str(data.get("server", "?")),
            message=str(data.get("message", "")),
            form=form,
            expires=float(data.get("expires", 0)),
        )

    def reply(self, run_id: str, question_id: str) -> Reply | None:
        """What the server is told: None while the question is pending.

        Read from the authentic closing record; a question closed in runs.db without
        one (an edit) is declined.
        """
        question = self.get(run_id, question_id)
        if question.state is QuestionState.PENDING:
            return None
        for record in self.store.audit.records(run_id, question.step_id):
            mine = record.event in _CLOSING and record.data.get("question_id") == question_id
            if mine and self.store.audit.authentic(record):
                return _reply(record)
        return Reply("decline")


def _reply(record: AuditRecord) -> Reply:
    state = QuestionState(record.event.removeprefix("question."))
    action = _ACTIONS[state]
    if action != "accept":
        return Reply(action)
    return Reply("accept", dict(record.data.get("content") or {}))


def _record(row: tuple[Any, ...]) -> QuestionRecord:
    try:
        state = QuestionState(row[4])
    except ValueError:
        raise StateError(
            f"run {row[0]!r}: question {row[1]}: state {row[4]!r} in runs.db"
        ) from None
    form = form_of(json.loads(row[6]))
    return QuestionRecord(row[0], row[1], row[2], row[3], state, row[5], form, *row[7:])


__all__ = ["FormError", "QuestionBook", "QuestionRecord", "QuestionState"]

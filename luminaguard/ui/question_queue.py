"""Questions from tools as the terminal UI lists them: pending ones, their rows and cards.

Nothing here imports Textual. A question is shown as its authentic ``question.asked``
audit record tells it (server, message, form, expiry: runs.db may be edited); one
without such a record is counted, not shown. A question past its expiry is left out:
the runner that waits for it records the expiry and tells the server "decline". Every
text from a question is hostile: it passes through ``visible`` into a ``rich.text.Text``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from luminaguard.errors import LuminaGuardError
from luminaguard.hostile_text import visible
from luminaguard.scheduler.questions import QuestionBook, QuestionRecord
from luminaguard.ui.approval_queue import span

#: What the queue's "rule" column says of a question (its kind).
KIND = "question"


@dataclass(frozen=True)
class Questions:
    """The pending questions (as audited) and how many were not shown (no authentic record)."""

    pending: list[QuestionRecord]
    unaudited: int = 0


def as_audited(book: QuestionBook, question: QuestionRecord) -> QuestionRecord:
    """The question with the server, message, form and expiry of its audit record."""
    return book.audited(question)


def load(book: QuestionBook, now: float) -> Questions:
    """The questions nobody answered yet and still within their time, oldest first."""
    pending, unaudited = [], 0
    for question in book.pending():
        try:
            shown = as_audited(book, question)
        except (LuminaGuardError, ValueError, TypeError):
            unaudited += 1
            continue
        if now <= shown.expires:
            pending.append(shown)
    return Questions(pending, unaudited)


def key(question: QuestionRecord) -> str:
    """The queue's row key of a question."""
    return f"?\0{question.run_id}\0{question.question_id}"


def row(question: QuestionRecord, now: float) -> tuple[Text, ...]:
    """The queue's row of a question: age, run, step, server, kind, time left."""
    cells = (
        span(now - question.asked),
        question.run_id,
        question.step_id or "-",
        question.server,
        KIND,
        span(question.expires - now),
    )
    shown = [Text(visible(cell)) for cell in cells]
    shown[4].stylize("bold magenta")
    return tuple(shown)


def matches(question: QuestionRecord, text: str) -> bool:
    """Whether the filter ``text`` occurs in the question's run, step, server or message."""
    fields = (question.run_id, question.step_id, question.server, KIND, question.message)
    return text.lower() in " ".join(str(field) for field in fields).lower()


def _field(label: str, value: object) -> Text:
    line = Text(f"{label:<11}", style="bold")
    line.append(visible(value))
    return line


def card(question: QuestionRecord, now: float) -> Text:
    """The top of a question's card: where it comes from, its message, its time left."""
    text = Text(visible(f"{question.run_id} / {question.step_id or '-'}"), style="bold underline")
    text.append("\n")
    text.append_text(_field("question:", f"from {question.server}"))
    text.append("\n")
    text.append_text(_field("time left:", span(question.expires - now)))
    text.append("\n")
    text.append_text(_field("message:", ""))
    text.append("\n")
    text.append(visible(question.message, multiline=True))
    return text

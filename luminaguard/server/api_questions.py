"""The question endpoints: questions MCP servers ask while their tools run, and replies.

An answer is checked against the question's audited form (422 naming the field when it
does not fit) and recorded only while the question is pending (409 otherwise: answered,
declined, expired or cancelled meanwhile). The runner waiting for it passes it on to
the server. Answering or declining needs the approve permission; the approvers lists of
policies are for Red steps and do not apply.
"""

from __future__ import annotations

from pydantic import BaseModel

from luminaguard.errors import LuminaGuardError, UsageError
from luminaguard.scheduler.questions import FormError, QuestionBook, QuestionRecord
from luminaguard.scheduler.states import StateError
from luminaguard.server.http import ApiError, Call, Endpoint
from luminaguard.server.models import (
    Answer,
    Answered,
    DeclineQuestion,
    QuestionList,
    QuestionView,
)
from luminaguard.server.tokens import Permission


def view(question: QuestionRecord) -> QuestionView:
    """A question as shown."""
    return QuestionView.model_validate(question.to_json())


def _book(call: Call) -> QuestionBook:
    return QuestionBook(call.server.store)


def _question(call: Call) -> QuestionRecord:
    try:
        return _book(call).get(call.param("run_id"), call.param("question_id"))
    except UsageError as exc:
        raise ApiError(404, str(exc)) from None


def _shown(book: QuestionBook, questions: list[QuestionRecord]) -> list[QuestionView]:
    """The questions as audited; one without an authentic record is not shown."""
    shown = []
    for question in questions:
        try:
            shown.append(view(book.audited(question)))
        except UsageError:
            continue
    return shown


async def pending(call: Call) -> BaseModel:
    """Every pending question (as audited), oldest first."""
    book = _book(call)
    return QuestionList(questions=_shown(book, book.pending()))


async def get_one(call: Call) -> BaseModel:
    """One question, whatever its state, as audited (409 without an authentic record)."""
    try:
        return view(_book(call).audited(_question(call)))
    except UsageError as exc:
        raise ApiError(409, str(exc)) from None


async def answer(call: Call) -> BaseModel:
    """Answer a pending question."""
    assert isinstance(call.body, Answer)
    question = _question(call)
    try:
        content = _book(call).answer(
            question.run_id, question.question_id, call.name, call.body.content
        )
    except FormError as exc:
        raise ApiError(422, str(exc)) from None
    except (StateError, LuminaGuardError) as exc:
        raise ApiError(409, str(exc)) from None
    return Answered(
        run_id=question.run_id,
        question_id=question.question_id,
        state="answered",
        by=call.name,
        content=content,
    )


async def decline(call: Call) -> BaseModel:
    """Decline to answer a pending question: the server is told "decline"."""
    assert isinstance(call.body, DeclineQuestion)
    question = _question(call)
    try:
        _book(call).decline(question.run_id, question.question_id, call.name, call.body.reason)
    except (StateError, LuminaGuardError) as exc:
        raise ApiError(409, str(exc)) from None
    return Answered(
        run_id=question.run_id,
        question_id=question.question_id,
        state="declined",
        by=call.name,
        content=None,
    )


_ONE = "/v1/questions/{run_id}/{question_id}"
ENDPOINTS = (
    Endpoint(
        "GET", "/v1/questions", pending, Permission.READ, "list pending questions",
        response=QuestionList,
    ),
    Endpoint(
        "GET", _ONE, get_one, Permission.READ, "get a question with its form",
        response=QuestionView, errors=(404,),
    ),
    Endpoint(
        "POST", _ONE + "/answer", answer, Permission.APPROVE, "answer a question",
        body=Answer, response=Answered, errors=(404, 409, 422),
    ),
    Endpoint(
        "POST", _ONE + "/decline", decline, Permission.APPROVE, "decline a question",
        body=DeclineQuestion, response=Answered, errors=(404, 409, 422),
    ),
)  # fmt: skip

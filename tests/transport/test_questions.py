"""The client's answers to a server's requests: forms to the asker, the rest refused."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import mcp_types as types

from luminaguard.transport.forms import Form
from luminaguard.transport.questions import (
    SAMPLING_REFUSED,
    URL_REFUSED,
    GuardedSession,
    Reply,
    callbacks,
)

FORM = {"type": "object", "properties": {"name": {"type": "string"}}}


class Asker:
    def __init__(self, reply: Reply | Exception) -> None:
        self.reply = reply
        self.asked: list[tuple[str, Form]] = []
        self.refused: list[tuple[str, str]] = []

    async def ask(self, message: str, form: Form) -> Reply:
        self.asked.append((message, form))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply

    async def refuse(self, request: str, why: str) -> None:
        self.refused.append((request, why))


def elicit(asker: Asker, params: Any) -> Any:
    return asyncio.run(callbacks(asker)["elicitation_callback"](None, params))


def form(schema: Any = FORM, message: str = "Who?") -> types.ElicitRequestFormParams:
    return types.ElicitRequestFormParams(message=message, requested_schema=schema)


def test_a_form_goes_to_the_asker_and_its_reply_to_the_server() -> None:
    asker = Asker(Reply("accept", {"name": "Ada"}))
    result = elicit(asker, form())
    assert result == types.ElicitResult(action="accept", content={"name": "Ada"})
    assert [(m, [f.name for f in f.fields]) for m, f in asker.asked] == [("Who?", ["name"])]


def test_a_url_question_is_declined_and_audited() -> None:
    asker = Asker(Reply("accept"))
    url = types.ElicitRequestURLParams(message="m", url="https://x.example", elicitation_id="1")
    assert elicit(asker, url) == types.ElicitResult(action="decline")
    assert asker.asked == [] and asker.refused == [("elicitation.url", URL_REFUSED)]


def test_a_bad_form_or_a_long_message_is_an_error_to_the_server() -> None:
    asker = Asker(Reply("accept"))
    nested = elicit(asker, form({"type": "object", "properties": {"a": {"type": "object"}}}))
    assert isinstance(nested, types.ErrorData) and nested.code == types.INVALID_PARAMS
    long = elicit(asker, form(message="m" * 4001))
    assert "message is over 4000 characters" in long.message
    assert asker.asked == [] and [r for r, _ in asker.refused] == ["elicitation.form"] * 2


def test_a_question_the_asker_refuses_is_an_error_naming_why() -> None:
    asker = Asker(RuntimeError("a/q asks too many questions"))
    refused = elicit(asker, form())
    assert isinstance(refused, types.ErrorData)
    assert refused.message == "LuminaGuard: a/q asks too many questions"
    assert asker.refused == [("elicitation", "a/q asks too many questions")]


def test_sampling_is_refused_with_a_message_with_or_without_an_asker() -> None:
    params = types.CreateMessageRequestParams(messages=[], max_tokens=1)
    asker = Asker(Reply("accept"))
    for hooks in (callbacks(asker), callbacks(None)):
        refused = asyncio.run(hooks["sampling_callback"](None, params))
        assert refused == types.ErrorData(code=types.INVALID_REQUEST, message=SAMPLING_REFUSED)
    assert asker.refused == [("sampling", SAMPLING_REFUSED)]
    assert "elicitation_callback" not in callbacks(None)


def declared(asker: Asker | None) -> types.ClientCapabilities:
    writes, reads = anyio.create_memory_object_stream[Any](1)
    with reads, writes:
        session = GuardedSession(reads, writes, **callbacks(asker))
        return session._build_capabilities("2025-11-25")


def test_the_session_declares_form_questions_only() -> None:
    with_asker = declared(Asker(Reply("accept")))
    form_only = types.ElicitationCapability(form=types.FormElicitationCapability())
    assert with_asker.elicitation == form_only and with_asker.sampling is None
    assert declared(None).elicitation is None and declared(None).sampling is None

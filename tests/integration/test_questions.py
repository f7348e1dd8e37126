"""Questions from a real MCP server (the SDK's, inside the namespace sandbox) reach the
queue; answers, declines and the timeout reach the server; sampling is refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from luminaguard.compiler import compile_paths
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from luminaguard.scheduler.questions import QuestionBook, QuestionRecord
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.store import RunStore
from luminaguard.transport.questions import SAMPLING_REFUSED, URL_REFUSED
from tests.conftest import Writer
from tests.integration import ask_server

pytestmark = pytest.mark.usefixtures("sandbox")

DOCS = ask_server.documents("q", "ask.py", timeout="{timeout}")


def drive(write: Writer, tmp_path: Path, steps: str, timeout: str = "60s") -> Any:
    """Start the run in a task; the store, the task and the book to answer from."""
    path = write("w.yaml", DOCS.replace("{timeout}", timeout) + steps)
    _, plans = compile_paths([str(path)])
    store = RunStore(tmp_path / "state")
    runner = Runner(store, SandboxBackend())
    return store, runner, plans[0]


async def first_question(book: QuestionBook, run: asyncio.Task[Any]) -> QuestionRecord:
    """The run's first question, once it is queued (polled: the runner is another task)."""
    while not book.pending("r"):
        if run.done():
            steps = {k: (v.state, v.error) for k, v in book.store.steps("r").items()}
            raise AssertionError(f"the run ended without asking: {run.result()}: {steps}")
        await asyncio.sleep(0.05)
    return book.pending("r")[0]


def told(store: RunStore, step: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(store.steps("r")[step].outputs["text"])
    return result


def test_a_question_is_queued_and_the_answer_reaches_the_server(
    write: Writer, tmp_path: Path
) -> None:
    steps = '    - {id: who, agent: a, call: q.ask, args: {message: "Deploy \\u001b[2J where?"}}\n'
    store, runner, plan = drive(write, tmp_path, steps)
    book = QuestionBook(store)

    async def scenario() -> QuestionRecord:
        run = asyncio.create_task(runner.start(plan, "r"))
        question = await first_question(book, run)
        book.answer("r", question.question_id, "alice", {"name": "Ada", "count": 3})
        result = await run
        assert result.state == "succeeded"
        return question

    question = asyncio.run(scenario())
    assert question.step_id == "who" and question.server == "a/q"
    assert question.message == "Deploy \x1b[2J where?"  # kept as sent; shown escaped
    assert [f.name for f in question.form.fields] == ["name", "count", "colour", "sure"]
    assert told(store, "who") == {"action": "accept", "content": {"count": 3, "name": "Ada"}}
    events = [r.event for r in store.audit.records("r", "who")]
    assert events.index("question.asked") < events.index("question.answered")
    answered = store.audit.records("r", "who", "question.answered")[0].data
    assert answered["who"] == "alice" and answered["content"] == {"count": 3, "name": "Ada"}


def test_a_declined_question_tells_the_server_decline(write: Writer, tmp_path: Path) -> None:
    store, runner, plan = drive(write, tmp_path, "    - {id: who, agent: a, call: q.ask}\n")
    book = QuestionBook(store)

    async def scenario() -> None:
        run = asyncio.create_task(runner.start(plan, "r"))
        question = await first_question(book, run)
        book.decline("r", question.question_id, "bob", "not now")
        await run

    asyncio.run(scenario())
    assert told(store, "who") == {"action": "decline", "content": None}
    [declined] = store.audit.records("r", "who", "question.declined")
    assert declined.data["who"] == "bob" and declined.data["reason"] == "not now"


def test_an_unanswered_question_declines_at_its_timeout(write: Writer, tmp_path: Path) -> None:
    store, runner, plan = drive(write, tmp_path, "    - {id: who, agent: a, call: q.ask}\n", "1s")
    result = asyncio.run(runner.start(plan, "r"))
    assert result.state == "succeeded"
    assert told(store, "who") == {"action": "decline", "content": None}
    [expired] = store.audit.records("r", "who", "question.expired")
    assert expired.data["reason"] == "no answer before the timeout"
    assert QuestionBook(store).pending() == []


def test_sampling_and_url_questions_are_refused_and_audited(write: Writer, tmp_path: Path) -> None:
    steps = """\
    - {id: sample, agent: a, call: q.sample}
    - {id: url, agent: a, call: q.ask_url, needs: [sample]}
    - {id: caps, agent: a, call: q.capabilities, needs: [url]}
    - id: nested
      agent: a
      call: q.ask_raw
      needs: [caps]
      args: {schema: '{"type": "object", "properties": {"a": {"type": "object"}}}'}
"""
    store, runner, plan = drive(write, tmp_path, steps)
    asyncio.run(runner.start(plan, "r"))
    assert SAMPLING_REFUSED in told(store, "sample")["error"]
    assert told(store, "url") == {"action": "decline"}
    assert told(store, "caps") == {"elicitation": {"form": {}}}  # no url, no sampling
    assert "type 'object' is not a form field's type" in told(store, "nested")["error"]
    refused = {r.event: r.data["why"] for r in store.audit.records("r") if "refused" in r.event}
    assert refused["sampling.refused"] == SAMPLING_REFUSED
    assert refused["elicitation.url.refused"] == URL_REFUSED
    assert "is not a form field's type" in refused["elicitation.form.refused"]
    assert QuestionBook(store).pending() == []

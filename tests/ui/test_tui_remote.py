"""``luminaguard approve --server URL``: the queue of a running ``luminaguard serve``.

A real server (tests/server/live.py) serves a state folder; questions are put in that
folder as a runner's asker puts them, and the server's event stream tells the queue.
The queue decides through the API, as the token's name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from luminaguard.scheduler.questions import QuestionBook, QuestionRecord
from luminaguard.scheduler.store import RunStore
from luminaguard.transport.forms import parse_form
from luminaguard.transport.reply import Reply
from luminaguard.ui import tui
from luminaguard.ui.remote import Remote
from luminaguard.ui.remote_desk import RemoteDesk, question_of, request_of
from tests.conftest import CliRunner
from tests.server.live import PATIENCE, LiveServer, serving
from tests.ui.test_tui import text_of, until
from tests.ui.test_tui_questions import FORM

App = tui.ApprovalApp


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with serving(tmp_path / "state", tmp_path / "workspace") as live:
        yield live


@pytest.fixture
def book(server: LiveServer) -> Iterator[QuestionBook]:
    store = RunStore(server.state)  # the server's state folder: its audit key too
    yield QuestionBook(store)
    store.close()


def ask(book: QuestionBook, run_id: str = "r3", message: str = "Deploy where?") -> QuestionRecord:
    return book.ask(run_id, "who", "a/q", message, parse_form(FORM), 9e9)


def drive(server: LiveServer, test: Callable[[App, Pilot[None]], Awaitable[None]]) -> None:
    """Run ``test(app, pilot)`` on the queue of ``server``, as alice."""
    desk = RemoteDesk(Remote(f"http://127.0.0.1:{server.port}", server.tokens["alice"]))
    desk.start()

    async def go() -> None:
        app = App(None, "", poll=0.05, desk=desk)
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            await test(app, pilot)

    asyncio.run(go())
    assert not desk.watcher.thread.is_alive()  # stopped when the queue closed


def listed(app: App) -> list[str]:
    return [q.question_id for q in app.questions]


def test_questions_arrive_live_and_are_answered_through_the_api(
    server: LiveServer, book: QuestionBook
) -> None:
    first = ask(book)
    later: list[QuestionRecord] = []

    async def test(app: App, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: listed(app) == [first.question_id], PATIENCE)
        later.append(ask(book, "r4", "[b]second[/b]\x1b[2J"))  # the event stream tells
        await until(pilot, lambda: len(listed(app)) == 2, PATIENCE)
        await pilot.press("enter", *"Ada", "tab", "3", "enter")
        await until(pilot, lambda: listed(app) == [later[0].question_id], PATIENCE)
        assert "question of a/q answered by alice" in text_of(app.status)
        assert "[b]second[/b]\\x1b[2J" in text_of(app.card)
        book.decline("r4", later[0].question_id, "dave", None)  # declined elsewhere
        await until(pilot, lambda: listed(app) == [], PATIENCE)

    drive(server, test)
    assert book.reply("r3", first.question_id) == Reply(
        "accept", {"name": "Ada", "count": 3, "sure": False}
    )
    [answered] = book.store.audit.records("r3", "who", "question.answered")
    assert answered.data["who"] == "alice"


def test_a_refusal_of_the_server_is_shown_and_a_decline_goes_through(
    server: LiveServer, book: QuestionBook
) -> None:
    question = ask(book)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: listed(app) == [question.question_id], PATIENCE)
        book.answer("r3", question.question_id, "dave", {"name": "D"})  # meanwhile
        await pilot.press("enter", *"Ada", "enter")  # before the queue hears of it
        await until(pilot, lambda: "HTTP 409" in text_of(app.status) or not listed(app))
        second = ask(book, "r5")
        await until(pilot, lambda: listed(app) == [second.question_id], PATIENCE)
        await pilot.press("d", *"not now", "enter")
        await until(pilot, lambda: listed(app) == [], PATIENCE)
        assert "declined by alice" in text_of(app.status)

    drive(server, test)
    [declined] = book.store.audit.records("r5", "who", "question.declined")
    assert declined.data["who"] == "alice" and declined.data["reason"] == "not now"


def test_what_a_server_lists_is_read_defensively() -> None:
    bad: dict[str, Any] = {"run_id": "r", "question_id": "q", "fields": [{"kind": "object"}]}
    with pytest.raises(ValueError):
        question_of(bad)
    with pytest.raises(KeyError):
        request_of({"run_id": "r"})
    view = {
        "run_id": "r", "step_id": "s", "action_hash": "sha256:x", "card": {"action": "a"},
        "min_approvals": 2, "approved_by": ["alice"], "requested": 1, "expires": 2,
    }  # fmt: skip
    request = request_of(view)
    assert request.card["approved_by"] == ["alice"] and request.card["min_approvals"] == 2


def test_approve_with_a_server_needs_no_run_and_a_readable_token(
    cli: CliRunner, tmp_path: Path
) -> None:
    result = cli("approve", "r1", "s", "--server", "http://127.0.0.1:9")
    assert result.code == 1 and "opens the queue only" in result.err
    missing = str(tmp_path / "nope")
    result = cli("approve", "--server", "http://127.0.0.1:9", "--token-file", missing)
    assert result.code == 1

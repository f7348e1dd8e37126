"""Questions from tools in the approval queue (``luminaguard approve`` on a terminal).

The questions are put in the store as a runner's asker puts them (``QuestionBook.ask``);
the app reads the same state folder through its own store, with the test's clock, and
its answers must reach the book as the reply the server would be sent.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Select, SelectionList

from luminaguard.scheduler import questions as questions_module
from luminaguard.scheduler import store as store_module
from luminaguard.scheduler.questions import QuestionBook, QuestionRecord
from luminaguard.transport.forms import parse_form
from luminaguard.transport.reply import Reply
from luminaguard.ui import tui
from luminaguard.ui.question_form import DeclineScreen, QuestionForm
from tests.scheduler.harness import Harness
from tests.ui.test_tui import WRITE_TOOL, SVGExtension, drive, halted, text_of, until

App = tui.ApprovalApp

#: The form of tests/fixtures/servers/ask.py, and one of each other kind.
FORM = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Your name", "maxLength": 40},
        "count": {"type": "integer", "minimum": 1, "maximum": 9},
        "colour": {"type": "string", "enum": ["red", "blue"]},
        "sure": {"type": "boolean"},
    },
    "required": ["name"],
}
EVERY_KIND = {
    "type": "object",
    "properties": {
        "ratio": {"type": "number", "description": "between 0 and 1", "maximum": 1},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 2},
        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "slow"},
        "ok": {"type": "boolean", "title": "Proceed?", "default": True},
    },
}


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.chdir(tmp_path)
    found = Harness(tmp_path / "state")
    found.tools.tools = [WRITE_TOOL]
    clock = types.SimpleNamespace(time=found.clock)  # fixed ages and times left on screen
    monkeypatch.setattr(store_module, "time", clock)
    monkeypatch.setattr(questions_module, "time", clock)
    yield found
    found.store.close()


def ask(
    harness: Harness,
    message: str = "Deploy where?",
    form: dict[str, object] = FORM,
    run_id: str = "r3",
    within: float = 300,
) -> QuestionRecord:
    """A question of server a/q in step ``who`` of run ``run_id``, as an asker puts it."""
    book = QuestionBook(harness.store)
    question = book.ask(run_id, "who", "a/q", message, parse_form(form), harness.clock.now + within)
    harness.clock.now += 15
    return question


def reply(harness: Harness, question: QuestionRecord) -> Reply | None:
    return QuestionBook(harness.store).reply(question.run_id, question.question_id)


def questions(app: App) -> list[tuple[str, str]]:
    return [(q.run_id, q.question_id) for q in app.questions]


def form(app: App) -> QuestionForm:
    assert app.form is not None
    return app.form


def test_a_question_is_listed_beside_the_requests_and_shows_its_form(
    harness: Harness, tmp_path: Path
) -> None:
    halted(harness, tmp_path)
    question = ask(harness)

    async def test(app: App, pilot: Pilot[None]) -> None:
        assert len(app.requests) == 3 and questions(app) == [("r3", question.question_id)]
        cells = app.table.get_row_at(3)
        assert [str(cell) for cell in cells] == ["15s", "r3", "who", "a/q", "question", "4m 45s"]
        assert app.form is None
        await pilot.press("down", "down", "down")
        card = text_of(app.card)
        assert "from a/q" in card and "Deploy where?" in card and "time left: 4m 45s" in card
        editors = form(app).editors()
        assert [type(e) for e in editors] == [Input, Input, Select, Checkbox]
        name, count = editors[0], editors[1]
        assert isinstance(name, Input) and name.max_length == 40 and name.type == "text"
        assert isinstance(count, Input) and count.type == "integer"
        labels = [text_of(label) for label in form(app).query(".label")]
        assert labels[0].startswith("Your name * (name)  at most 40 characters")
        assert labels[1].startswith("count  1 to 9")

    drive(harness, test)


def test_answering_from_the_keyboard_records_the_answer(harness: Harness) -> None:
    question = ask(harness)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("enter")  # into the form: the name's box
        await pilot.press(*"Ada", "tab", "3", "tab")  # then the colour
        await pilot.press("enter", "down", "down", "enter")  # red, then blue
        await pilot.press("tab", "space")  # sure
        assert form(app).content() == {"name": "Ada", "count": 3, "colour": "blue", "sure": True}
        await pilot.press("escape", "a")  # back to the queue; answer
        assert questions(app) == []
        assert "question of a/q answered by carol" in text_of(app.status)

    drive(harness, test)
    content = {"name": "Ada", "count": 3, "colour": "blue", "sure": True}
    assert reply(harness, question) == Reply("accept", content)
    [answered] = harness.store.audit.records("r3", "who", "question.answered")
    assert answered.data["who"] == "carol" and answered.data["content"] == content


def test_enter_in_a_box_answers_and_an_unchecked_box_is_false(harness: Harness) -> None:
    question = ask(harness)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("enter", *"Ada", "enter")
        assert questions(app) == []

    drive(harness, test)
    assert reply(harness, question) == Reply("accept", {"name": "Ada", "sure": False})


def test_declining_records_a_decline_with_the_reason(harness: Harness) -> None:
    question = ask(harness)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("d")
        assert isinstance(app.screen, DeclineScreen)
        await pilot.press("escape")  # back: nothing declined
        assert "not declined" in text_of(app.status) and len(questions(app)) == 1
        await pilot.press("d", *"not now", "enter")
        assert questions(app) == []

    drive(harness, test)
    assert reply(harness, question) == Reply("decline")
    [declined] = harness.store.audit.records("r3", "who", "question.declined")
    assert declined.data["who"] == "carol" and declined.data["reason"] == "not now"


@pytest.mark.parametrize(
    ("keys", "shown"),
    [
        (["enter", *"Ada", "tab", *"12"], "count: above the maximum (9)"),
        (["enter", "tab", "5"], "name: required"),
    ],
)
def test_an_answer_the_form_refuses_is_shown_and_nothing_recorded(
    harness: Harness, keys: list[str], shown: str
) -> None:
    question = ask(harness)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press(*keys, "enter")
        assert shown in text_of(app.status)
        assert len(questions(app)) == 1
        assert isinstance(app.focused, Input)  # still in the form, as typed
        await pilot.press("escape", "a")  # from the queue: refused the same way
        assert shown in text_of(app.status) and len(questions(app)) == 1

    drive(harness, test)
    assert reply(harness, question) is None
    assert harness.store.audit.records("r3", "who", "question.answered") == []


def test_every_kind_of_field_has_its_widget_and_defaults(harness: Harness) -> None:
    question = ask(harness, form=EVERY_KIND)

    async def test(app: App, pilot: Pilot[None]) -> None:
        editors = form(app).editors()
        assert [type(e) for e in editors] == [Input, SelectionList, Select, Checkbox]
        assert form(app).content() == {"mode": "slow", "ok": True}
        await pilot.press("enter", *"0.5", "tab", "space", "down", "space", "down", "space")
        assert "ratio: above" not in text_of(app.status)
        await pilot.press("escape", "a")  # three tags: over maxItems
        assert "tags: above the maximum (2)" in text_of(app.status)
        await pilot.press("enter", "tab", "space", "escape", "a")  # c (highlighted) off
        assert questions(app) == []

    drive(harness, test)
    content = {"ratio": 0.5, "tags": ["a", "b"], "mode": "slow", "ok": True}
    assert reply(harness, question) == Reply("accept", content)


def test_a_question_answered_elsewhere_disappears_live(harness: Harness) -> None:
    first, second = ask(harness), ask(harness, run_id="r4")

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("enter", *"half typed", "escape")
        assert len(questions(app)) == 2
        book = QuestionBook(harness.store)  # another process
        book.answer("r3", first.question_id, "dave", {"name": "D"}, harness.clock)
        await until(pilot, lambda: questions(app) == [("r4", second.question_id)])
        assert "r4 / who" in text_of(app.card)
        assert form(app).content() == {"sure": False}  # the other question's form, empty

    drive(harness, test)
    assert reply(harness, first) == Reply("accept", {"name": "D"})


def test_a_new_question_appears_and_an_expired_one_goes_live(harness: Harness) -> None:
    async def test(app: App, pilot: Pilot[None]) -> None:
        assert questions(app) == []
        question = ask(harness, within=60)
        await until(pilot, lambda: questions(app) == [("r3", question.question_id)])
        await pilot.press("enter", *"typed", "escape")
        harness.clock.now += 30  # a tick keeps what was typed
        await until(pilot, lambda: "time left: 15s" in text_of(app.card))
        assert form(app).content() == {"name": "typed", "sure": False}
        harness.clock.now += 16
        await until(pilot, lambda: questions(app) == [])
        assert app.form is None and "no approval requests waiting" in text_of(app.card)

    drive(harness, test)


def test_an_answer_after_the_expiry_is_refused(harness: Harness) -> None:
    question = ask(harness, within=60)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("enter", *"Ada")
        harness.clock.now += 100
        await pilot.press("enter")  # before the poll hides it
        assert "expired before the answer came" in text_of(app.status)

    drive(harness, test, poll=3600)
    assert reply(harness, question) == Reply("decline")


def test_a_question_without_an_audit_record_is_not_shown(harness: Harness) -> None:
    ask(harness)
    harness.store.db.execute(
        "INSERT INTO questions (run_id, question_id, step_id, server, state, message, form,"
        " asked, expires) VALUES ('r3', 'q-forged', 'who', 'a/q', 'pending', 'forged', '[]',"
        " 0, 9e9)"
    )

    async def test(app: App, pilot: Pilot[None]) -> None:
        assert [q for _, q in questions(app)] != ["q-forged"] and len(questions(app)) == 1
        assert "1 requests not shown: no authentic audit record" in text_of(app.status)

    drive(harness, test)


HOSTILE = "[bold red]ANSWER YES[/bold red]\x1b[2J\x1b]0;t\x07\u202e\nsecond line"


def test_escapes_and_markup_in_a_question_show_as_text(harness: Harness) -> None:
    hostile_form = {
        "type": "object",
        "properties": {
            "x": {"type": "string", "title": "[b]T[/b]\u202e", "description": "[i]d[/i]\x1b[31m"},
            "c": {"type": "string", "enum": ["[red]r[/red]", "\x1b[2Jplain"]},
            "y": {"type": "boolean", "title": "[link=http://e]L[/link]"},
        },
    }
    ask(harness, message=HOSTILE, form=hostile_form)

    async def test(app: App, pilot: Pilot[None]) -> None:
        card = text_of(app.card)
        assert "[bold red]ANSWER YES[/bold red]" in card and "second line" in card
        assert "\\x1b[2J" in card and "\\u202e" in card and "\\x07" in card
        labels = "".join(text_of(label) for label in form(app).query(".label"))
        assert "[b]T[/b]\\u202e" in labels and "[i]d[/i]\\x1b[31m" in labels
        svg = app.export_screenshot(title="hostile question").replace("&#160;", " ")
        assert "\x1b" not in svg and "\u202e" not in svg
        assert "[bold&#160;red]" not in svg and "[bold red]ANSWER YES[/bold red]" in svg
        assert "[link=http://e]L[/link]" in svg
        await pilot.press("enter", "tab", "enter")  # the choices, as text
        svg = app.export_screenshot().replace("&#160;", " ")
        assert "[red]r[/red]" in svg and "\\x1b[2Jplain" in svg

    drive(harness, test, poll=3600)


def test_snapshot_of_a_question_card(harness: Harness, snapshot: SnapshotAssertion) -> None:
    ask(harness, message="Which cluster should the deploy go to?\nAnswer within 5 minutes.")
    shots: list[str] = []

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.pause()
        shots.append(app.export_screenshot(title="question"))

    drive(harness, test, poll=3600)
    assert shots[0] == snapshot(extension_class=SVGExtension)


def test_what_is_typed_survives_a_reload_of_the_queue(harness: Harness, tmp_path: Path) -> None:
    halted(harness, tmp_path)
    question = ask(harness)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("down", "down", "down", "enter", *"Ada", "tab", "4")
        harness.decide("w", "approved", "dave")  # another process: the queue reloads
        await until(pilot, lambda: len(app.requests) == 2)
        assert app.selected_question() == app.questions[0]
        assert form(app).content() == {"name": "Ada", "count": 4, "sure": False}
        assert isinstance(app.focused, Input) and app.focused.value == "4"
        await pilot.press("enter")

    drive(harness, test)
    assert reply(harness, question) == Reply("accept", {"name": "Ada", "count": 4, "sure": False})

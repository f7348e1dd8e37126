"""The question book and the asker: one reply per question, from the authentic audit log."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from luminaguard.errors import UsageError
from luminaguard.scheduler.asking import MARGIN, MAX_ASKED, MAX_WAITING, RunAsker, TooManyQuestions
from luminaguard.scheduler.questions import QuestionBook, QuestionState
from luminaguard.scheduler.states import StateError
from luminaguard.scheduler.store import RunStore
from luminaguard.transport.forms import FormError, parse_form
from luminaguard.transport.reply import Reply

FORM = parse_form(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "n": {"type": "integer", "maximum": 9}},
        "required": ["name"],
    }
)


@pytest.fixture
def book(tmp_path: Path) -> QuestionBook:
    return QuestionBook(RunStore(tmp_path / "state"))


def asked(book: QuestionBook, expires: float | None = None) -> str:
    when = time.time() + 60 if expires is None else expires
    return book.ask("r", "s", "a/q", "Who?", FORM, when).question_id


def test_an_answer_is_checked_recorded_once_and_is_the_reply(book: QuestionBook) -> None:
    qid = asked(book)
    assert [q.question_id for q in book.pending()] == [qid] and book.reply("r", qid) is None
    assert book.answer("r", qid, "alice", {"name": "Ada", "n": 3}) == {"name": "Ada", "n": 3}
    assert book.reply("r", qid) == Reply("accept", {"name": "Ada", "n": 3})
    assert book.pending() == [] and book.get("r", qid).state is QuestionState.ANSWERED
    with pytest.raises(StateError, match="the question is answered, not pending"):
        book.answer("r", qid, "bob", {"name": "Eve"})
    with pytest.raises(StateError):
        book.decline("r", qid, "bob", None)
    events = [(r.event, r.data.get("who")) for r in book.store.audit.records("r", "s")]
    assert events == [("question.asked", None), ("question.answered", "alice")]


def test_an_answer_the_form_refuses_records_nothing(book: QuestionBook) -> None:
    qid = asked(book)
    with pytest.raises(FormError, match="n: above the maximum"):
        book.answer("r", qid, "alice", {"name": "Ada", "n": 10})
    assert book.get("r", qid).state is QuestionState.PENDING
    assert len(book.store.audit.records("r")) == 1


def test_a_decline_is_the_reply(book: QuestionBook) -> None:
    qid = asked(book)
    book.decline("r", qid, "bob", "no")
    assert book.reply("r", qid) == Reply("decline")


def test_an_answer_after_the_expiry_expires_the_question(book: QuestionBook) -> None:
    qid = asked(book, expires=time.time() - 1)
    with pytest.raises(StateError, match="expired before the answer came"):
        book.answer("r", qid, "alice", {"name": "Ada"})
    assert book.reply("r", qid) == Reply("decline")
    assert book.get("r", qid).state is QuestionState.EXPIRED


def test_an_unknown_question_is_a_usage_error(book: QuestionBook) -> None:
    with pytest.raises(UsageError, match="run 'r' has no question 'q-nope'"):
        book.answer("r", "q-nope", "alice", {})


def test_the_form_checked_is_the_audited_one_not_the_edited_row(book: QuestionBook) -> None:
    qid = asked(book)
    loose = '[{"name": "evil", "kind": "string"}]'
    book.store.db.execute("UPDATE questions SET form = ? WHERE question_id = ?", (loose, qid))
    with pytest.raises(FormError, match="no such field: evil"):
        book.answer("r", qid, "alice", {"evil": "x"})


def test_a_question_closed_in_runs_db_without_an_audit_record_is_declined(
    book: QuestionBook,
) -> None:
    qid = asked(book)
    book.store.db.execute("UPDATE questions SET state = 'answered' WHERE question_id = ?", (qid,))
    assert book.reply("r", qid) == Reply("decline")


def test_an_edited_answer_record_is_not_the_reply(book: QuestionBook) -> None:
    qid = asked(book)
    book.answer("r", qid, "alice", {"name": "Ada"})
    book.store.db.execute(
        "UPDATE audit SET data = replace(data, 'Ada', 'rm -rf') WHERE event = 'question.answered'"
    )
    assert book.reply("r", qid) == Reply("decline")


def test_a_question_whose_asked_record_was_removed_cannot_be_answered(book: QuestionBook) -> None:
    qid = asked(book)
    book.store.db.execute("UPDATE audit SET data = '{}' WHERE event = 'question.asked'")
    with pytest.raises(UsageError, match="no authentic audit record"):
        book.answer("r", qid, "alice", {"name": "Ada"})


def test_cancel_all_closes_the_runs_pending_questions(book: QuestionBook) -> None:
    first, second = asked(book), asked(book)
    book.answer("r", first, "alice", {"name": "Ada"})
    book.cancel_all("r", "stopped")
    assert book.reply("r", first) == Reply("accept", {"name": "Ada"})
    assert book.reply("r", second) == Reply("cancel")


def test_two_answers_at_once_record_exactly_one(tmp_path: Path) -> None:
    qid = asked(QuestionBook(RunStore(tmp_path / "s")))
    outcomes: list[str] = []
    ready = threading.Barrier(4)

    def answer(who: str) -> None:
        book = QuestionBook(RunStore(tmp_path / "s"))  # a process of its own, as it were
        ready.wait()
        try:
            book.answer("r", qid, who, {"name": who})
            outcomes.append("answered")
        except StateError:
            outcomes.append("refused")
        finally:
            book.store.close()
            book.store.close = lambda: None  # type: ignore[method-assign]  # closed in its thread

    threads = [threading.Thread(target=answer, args=(f"p{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["answered", "refused", "refused", "refused"]
    book = QuestionBook(RunStore(tmp_path / "s"))
    assert len(book.store.audit.records("r", None, "question.answered")) == 1


# --- the asker ----------------------------------------------------------------------------
def test_the_asker_returns_an_answer_made_by_another_connection(tmp_path: Path) -> None:
    book = QuestionBook(RunStore(tmp_path / "s"))

    async def scenario() -> Reply:
        asker = RunAsker(book, "r", "a/q", {"step": asyncio.get_running_loop().time() + 60}, 30)
        asking = asyncio.create_task(asker.ask("Who?", FORM))
        while not book.pending():
            await asyncio.sleep(0.01)
        other = QuestionBook(RunStore(tmp_path / "s"))
        other.answer("r", other.pending()[0].question_id, "alice", {"name": "Ada"})
        return await asking

    assert asyncio.run(scenario()) == Reply("accept", {"name": "Ada"})
    [question] = book.store.db.execute("SELECT step_id, server FROM questions").fetchall()
    assert question == ("step", "a/q")


def test_an_unanswered_question_expires_and_declines(book: QuestionBook) -> None:
    asker = RunAsker(book, "r", "a/q", {}, 0.2)
    assert asyncio.run(asker.ask("Who?", FORM)) == Reply("decline")
    [expired] = book.store.audit.records("r", None, "question.expired")
    assert expired.data["reason"] == "no answer before the timeout"


def test_a_question_expires_before_the_tool_call_it_belongs_to(book: QuestionBook) -> None:
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        calls = {"s1": loop.time() + MARGIN + 0.3, "s2": loop.time() + 60}
        started = loop.time()
        assert await RunAsker(book, "r", "a/q", calls, 300).ask("?", FORM) == Reply("decline")
        return loop.time() - started

    assert asyncio.run(scenario()) < 5
    # two calls in flight on the server: the question names no step
    assert book.store.db.execute("SELECT step_id FROM questions").fetchone() == (None,)


def test_a_tool_call_that_ends_first_cancels_its_question(book: QuestionBook) -> None:
    async def scenario() -> None:
        asking = asyncio.create_task(RunAsker(book, "r", "a/q", {}, 60).ask("?", FORM))
        while not book.pending():
            await asyncio.sleep(0.01)
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking

    asyncio.run(scenario())
    assert [q.state for q in book._select("", ())] == [QuestionState.CANCELLED]


def test_refusals_are_audited_with_the_server(book: QuestionBook) -> None:
    asyncio.run(RunAsker(book, "r", "a/q", {"s": 0.0}, 60).refuse("sampling", "no model"))
    [record] = book.store.audit.records("r")
    assert (record.event, record.step_id, record.data) == (
        "sampling.refused",
        "s",
        {"server": "a/q", "why": "no model"},
    )


def test_a_server_may_not_bury_the_queue_in_questions(book: QuestionBook) -> None:
    async def scenario() -> None:
        asker = RunAsker(book, "r", "a/q", {}, 60)
        waiting = [asyncio.create_task(asker.ask("?", FORM)) for _ in range(MAX_WAITING)]
        while len(book.pending()) < MAX_WAITING:
            await asyncio.sleep(0.01)
        with pytest.raises(TooManyQuestions, match="a/q asks too many questions"):
            await asker.ask("one more?", FORM)
        for question in book.pending():
            book.decline("r", question.question_id, "alice", None)
        assert await asyncio.gather(*waiting) == [Reply("decline")] * MAX_WAITING
        for _ in range(MAX_ASKED - MAX_WAITING):  # the rest of the run's questions
            book.ask("r", None, "a/q", "?", FORM, 0)
        again = RunAsker(book, "r", "a/q", {}, 60)  # the server started again: same count
        with pytest.raises(TooManyQuestions):
            await again.ask("and another?", FORM)

    asyncio.run(scenario())
    assert len(book.store.audit.records("r", None, "question.asked")) == MAX_ASKED

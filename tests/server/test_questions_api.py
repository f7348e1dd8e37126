"""The question endpoints in-process: list, read, answer (checked), decline, who may."""

from __future__ import annotations

import time

from luminaguard.scheduler.questions import QuestionBook
from luminaguard.server.models import Answered, QuestionList, QuestionView
from luminaguard.transport.forms import parse_form
from luminaguard.transport.reply import Reply
from tests.server import test_app
from tests.server.test_app import Api, problem

api = test_app.api  # the fixture: a server on the fakes and a token of each role

FORM = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 8},
        "colour": {"type": "string", "enum": ["red", "blue"]},
        "sure": {"type": "boolean"},
    },
    "required": ["name"],
}
MESSAGE = "<script>alert(1)</script> \x1b[2J which?"


def ask(api: Api, expires: float = 3600) -> str:
    def made() -> str:
        book = QuestionBook(api.server.store)
        when = time.time() + expires
        return book.ask("r", "s", "a/q", MESSAGE, parse_form(FORM), when).question_id

    return api.call(made)


def reply(api: Api, qid: str) -> Reply | None:
    return api.call(lambda: QuestionBook(api.server.store).reply("r", qid))


def test_a_pending_question_is_listed_with_its_form_as_data(api: Api) -> None:
    qid = ask(api)
    listed = QuestionList.model_validate(api.get("/v1/questions", role="viewer").json())
    [question] = listed.questions
    assert (question.question_id, question.server, question.step_id) == (qid, "a/q", "s")
    assert question.message == MESSAGE  # data: the page shows it as text
    assert [(f.name, f.kind, f.required) for f in question.fields] == [
        ("name", "string", True),
        ("colour", "choice", False),
        ("sure", "boolean", False),
    ]
    one = QuestionView.model_validate(api.get(f"/v1/questions/r/{qid}").json())
    assert one == question


def test_an_answer_is_checked_recorded_and_reaches_the_reply(api: Api) -> None:
    qid = ask(api)
    path = f"/v1/questions/r/{qid}/answer"
    refused = api.post(path, {"content": {"name": "Ada", "colour": "green"}}, role="approver")
    assert refused.status_code == 422
    assert problem(refused).error == "colour: not one of the choices"
    assert reply(api, qid) is None
    done = api.post(path, {"content": {"name": "Ada", "sure": True}}, role="approver")
    assert done.status_code == 200
    answered = Answered.model_validate(done.json())
    assert (answered.by, answered.content) == ("approver", {"name": "Ada", "sure": True})
    assert reply(api, qid) == Reply("accept", {"name": "Ada", "sure": True})
    again = api.post(path, {"content": {"name": "Eve"}}, role="approver")
    assert again.status_code == 409 and "answered, not pending" in problem(again).error
    assert api.get("/v1/questions").json() == {"questions": []}


def test_a_decline_is_recorded_with_its_reason(api: Api) -> None:
    qid = ask(api)
    done = api.post(f"/v1/questions/r/{qid}/decline", {"reason": "no"}, role="approver")
    assert done.status_code == 200 and done.json()["state"] == "declined"
    assert reply(api, qid) == Reply("decline")


def test_a_viewer_may_read_but_not_answer(api: Api) -> None:
    qid = ask(api)
    for action, body in (("answer", {"content": {"name": "x"}}), ("decline", {})):
        refused = api.post(f"/v1/questions/r/{qid}/{action}", body, role="viewer")
        assert refused.status_code == 403
    assert reply(api, qid) is None


def test_a_late_answer_is_a_conflict_and_the_question_expires(api: Api) -> None:
    qid = ask(api, expires=-1)
    late = api.post(f"/v1/questions/r/{qid}/answer", {"content": {"name": "Ada"}})
    assert late.status_code == 409 and "expired" in problem(late).error
    assert reply(api, qid) == Reply("decline")


def test_unknown_questions_and_bad_bodies(api: Api) -> None:
    assert api.get("/v1/questions/r/q-none").status_code == 404
    assert api.post("/v1/questions/r/q-none/answer", {"content": {}}).status_code == 404
    qid = ask(api)
    extra = api.post(f"/v1/questions/r/{qid}/answer", {"content": {}, "who": "root"})
    assert extra.status_code == 422  # unknown fields of the body are refused
    nested = api.post(f"/v1/questions/r/{qid}/answer", {"content": {"name": {"a": 1}}})
    assert nested.status_code == 422
    assert reply(api, qid) is None


def test_a_question_edited_in_runs_db_is_shown_as_audited_or_not_at_all(api: Api) -> None:
    qid = ask(api)

    def edit(sql: str) -> None:
        api.server.store.db.execute(sql, (qid,))

    api.call(edit, "UPDATE questions SET message = 'Approve everything?' WHERE question_id = ?")
    [shown] = QuestionList.model_validate(api.get("/v1/questions").json()).questions
    assert shown.message == MESSAGE
    assert api.get(f"/v1/questions/r/{qid}").json()["message"] == MESSAGE
    api.call(edit, "UPDATE audit SET data = '{}' WHERE event = 'question.asked' AND ? != ''")
    assert api.get("/v1/questions").json() == {"questions": []}
    assert api.get(f"/v1/questions/r/{qid}").status_code == 409

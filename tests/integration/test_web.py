"""The approval page of a real ``luminaguard serve``, in a real headless browser.

Debian's chromium (``make browser-deps``) driven by Playwright (a dev dependency): no
browser is downloaded. Where neither can be had, the tests skip with the reason. One
server (module-scoped) serves every test; each uses its own run ids. Steps run in real
sandboxes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration import ask_server
from tests.server.live import LiveServer, wait_until

CHROMIUM = Path("/usr/bin/chromium")
#: Where the card's screenshot is saved (a test artifact; LUMINAGUARD_ARTIFACTS moves it).
ARTIFACTS = Path(os.environ.get("LUMINAGUARD_ARTIFACTS", ROOT / "test-artifacts"))
#: How long the page may take to show what the server did (ms).
WAIT = 30_000

HEAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  approval: {approvers: [alice], timeout: 1h}
  rules:
    - id: logs
      match: {program: [echo], redirects: {path: /work/*.log}}
      risk: green
      reason: logs only
    - id: say
      match: {program: [printf]}
      risk: green
      reason: prints only
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec: {policy: p}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: first, agent: a, run: "echo x >> /work/first.log"}
"""
# touch matches no rule: the step is Red, halts for alice's approval
HALTS = """\
    - {id: red, agent: a, run: "touch /work/red.flag; echo x >> /work/red.log", needs: [first]}
    - {id: last, agent: a, run: "echo x >> /work/last.log", needs: [red]}
"""
#: A step whose output, and a Red step whose command, hold markup that must stay text.
HOSTILE = """\
    - id: say
      agent: a
      needs: [first]
      run: printf '%s' '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    - id: red
      agent: a
      needs: [say]
      run: touch '/work/<script>window.pwned=3</script>'
"""
MARKUP = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


def browser_problem() -> str | None:
    """Why no browser can be driven here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[dev]'"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: run `make browser-deps` (needs root and apt)"
    return None


@pytest.fixture(scope="module")
def browser(module_server: LiveServer) -> Iterator[Any]:
    problem = browser_problem()
    if problem:
        pytest.skip(problem)
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as driver:
        try:
            launched = driver.chromium.launch(executable_path=str(CHROMIUM))
        except Error as exc:
            pytest.skip(f"chromium does not start here: {exc}")
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, module_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.goto(f"http://127.0.0.1:{module_server.port}/")
    yield opened
    context.close()
    assert errors == [], errors  # no script error on the page (CSP refusals included)


def sign_in(page: Any, server: LiveServer, who: str = "alice") -> None:
    page.fill("#token", server.tokens[who])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#app", state="visible")
    page.wait_for_selector("#connection:text('live')")


def submit(server: LiveServer, run_id: str, steps: str = HALTS) -> None:
    (server.workspace / f"{run_id}.yaml").write_text(HEAD + steps)
    server.submit(f"{run_id}.yaml", run_id)


def node(run_id: str, step: str, state: str) -> str:
    """The selector of a step's box in the drawn DAG, in ``state``."""
    return f"#dag g[data-step='{step}'][data-state='{state}']"


def test_sign_in_see_a_request_arrive_approve_and_the_run_goes_on(
    page: Any, module_server: LiveServer
) -> None:
    server = module_server
    sign_in(page, server)
    # the token is kept in this tab's session, never in a cookie
    assert page.evaluate("sessionStorage.getItem('luminaguard.token')") == server.tokens["alice"]
    assert page.context.cookies() == []
    page.reload()  # signed in still, without typing the token again
    page.wait_for_selector("#connection:text('live')")
    page.evaluate("window.stayed = true")  # gone if the page reloaded

    submit(server, "web-approve")
    page.locator("#queue button[data-run='web-approve'][data-step='red']").click()
    page.wait_for_selector("#card-run:text('web-approve')")
    assert page.text_content("#card-command") == "touch /work/red.flag; echo x >> /work/red.log"
    assert page.text_content("#card-rule").startswith("p / (default)")
    assert page.text_content("#card-approvers") == "alice"
    assert page.text_content("#card-time").endswith("s left")
    digest = server.request_of("web-approve", "red")["action_hash"]
    assert page.text_content("#card-hash") == digest
    page.wait_for_selector(node("web-approve", "red", "awaiting_approval"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#card").screenshot(path=str(ARTIFACTS / "web-card.png"))
    page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)

    page.fill("#decision-reason", "looked at it")
    page.click("#approve")
    page.wait_for_selector("#decision-message:text('red approved by alice')")
    # the run goes on, and the page follows it through the event stream
    page.wait_for_selector(node("web-approve", "last", "succeeded"))
    page.wait_for_selector("#run-state:text('succeeded')")
    assert page.locator("#queue button[data-run='web-approve']").count() == 0
    assert page.evaluate("window.stayed") is True
    assert server.run("web-approve")["state"] == "succeeded"
    decided = server.request_of("web-approve", "red")
    assert (decided["state"], decided["approver"], decided["reason"]) == (
        "approved",
        "alice",
        "looked at it",
    )


def test_two_approvers_the_first_is_counted_and_the_second_lets_the_run_finish(
    page: Any, module_server: LiveServer
) -> None:
    server = module_server
    two = HEAD.replace("{approvers: [alice],", "{approvers: [alice, bob], min_approvals: 2,")
    (server.workspace / "web-two.yaml").write_text(two + HALTS)
    server.submit("web-two.yaml", "web-two")
    sign_in(page, server)  # while the run halts: the page must not miss its request
    page.locator("#queue button[data-run='web-two'][data-step='red']").click()
    page.wait_for_selector("#card-approvals:text('0 of 2')")
    page.click("#approve")
    page.wait_for_selector("#decision-message:text('red approval by alice counted: 1 more needed')")
    page.wait_for_selector("#card-approvals:text('1 of 2 (alice)')")
    assert page.is_visible("#card") and page.is_enabled("#approve")  # the card stays open
    assert page.text_content("#card-state") == "pending"
    assert server.request_of("web-two", "red")["state"] == "pending"
    assert server.steps("web-two")["last"] != "succeeded"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#card").screenshot(path=str(ARTIFACTS / "web-card-approvals.png"))

    page.click("#sign-out")
    sign_in(page, server, "bob")
    page.locator("#queue button[data-run='web-two'][data-step='red']").click()
    page.wait_for_selector("#card-approvals:text('1 of 2 (alice)')")
    page.click("#approve")
    page.wait_for_selector("#decision-message:text('red approved by bob')")
    page.wait_for_selector("#run-state:text('succeeded')")
    assert server.run("web-two")["state"] == "succeeded"
    assert server.request_of("web-two", "red")["approved_by"] == ["alice", "bob"]


def test_a_notifications_link_opens_its_card(page: Any, module_server: LiveServer) -> None:
    server = module_server
    submit(server, "web-link")
    server.wait_run("web-link", "halted")
    page.goto(f"http://127.0.0.1:{server.port}/#/approvals/web-link/red")
    sign_in(page, server)
    page.wait_for_selector("#card-run:text('web-link')")
    assert page.inner_text("#card-step") == "red"


def test_a_deny_needs_a_reason(page: Any, module_server: LiveServer) -> None:
    server = module_server
    sign_in(page, server)
    submit(server, "web-deny")
    page.click("#runs button[data-run='web-deny']")
    red = page.locator(node("web-deny", "red", "awaiting_approval"))
    assert red.get_attribute("data-risk") == "red"
    red.click()  # a Red step of the DAG opens its card
    page.wait_for_selector("#card-step:text('red')")
    page.click("#deny")
    page.wait_for_selector("#decision-message:text('A deny needs a reason.')")
    assert server.request_of("web-deny", "red")["state"] == "pending"
    page.fill("#decision-reason", "not today")
    page.click("#deny")
    page.wait_for_selector("#decision-message:text('red denied by alice')")
    page.wait_for_selector(node("web-deny", "red", "denied"))
    page.wait_for_selector("#run-state:text('failed')")
    decided = server.request_of("web-deny", "red")
    assert (decided["state"], decided["reason"]) == ("denied", "not today")
    assert server.steps("web-deny")["last"] != "succeeded"


def test_markup_from_a_run_is_shown_as_text_and_runs_nothing(
    page: Any, module_server: LiveServer
) -> None:
    server = module_server
    sign_in(page, server, "viewer")
    submit(server, "web-markup", HOSTILE)
    page.click("#runs button[data-run='web-markup']")
    page.wait_for_selector(node("web-markup", "say", "succeeded"))
    assert page.locator("#steps tr[data-step='say'] pre.output").text_content() == MARKUP
    page.locator("#queue button[data-run='web-markup'][data-step='red']").click()
    page.wait_for_selector("#card-step:text('red')")
    assert page.text_content("#card-command") == "touch '/work/<script>window.pwned=3</script>'"
    assert "<script>window.pwned=3</script>" in page.text_content("#card-action")
    # nothing ran: no global set, no element made of the markup, one script on the page
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.scripts.length") == 1
    assert page.locator("main img").count() == 0
    assert page.locator("#steps script, #card script").count() == 0


def test_the_page_needs_a_valid_token(page: Any, module_server: LiveServer) -> None:
    page.fill("#token", "lg_" + "x" * 43)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:text('that token is not valid here')")
    assert page.is_hidden("#app")
    assert page.evaluate("sessionStorage.getItem('luminaguard.token')") is None


WRITE = {
    "run_id": "shown-run",
    "step_id": "write",
    "action_hash": "sha256:" + "ab" * 32,
    "state": "pending",
    "card": {
        "step": "write",
        "agent": "a",
        "action": "fs.write_file(path='/work/<b>notes</b>.md', content=...)",
        "kind": "call",
        "arguments": {"path": "/work/<b>notes</b>.md", "content": "new\n<script>x</script>\n"},
        "policy": "p",
        "rule": "writes",
        "rule_source": "policy.yaml:9:7",
        "reason": "writes <i>a file</i>",
        "action_hash": "sha256:" + "ab" * 32,
        "approvers": [],
        "diff": "--- /work/<b>notes</b>.md (now)\n+++ /work/<b>notes</b>.md (after)\n"
        "@@ -1 +1,2 @@\n-old\n+new\n+<script>window.pwned=4</script>\n",
    },
    "requested": 0.0,
    "expires": 4102444800.0,  # 2100
    "decided": None,
    "approver": None,
    "reason": None,
}


def test_a_file_write_card_shows_its_arguments_and_diff_as_text(
    page: Any, module_server: LiveServer
) -> None:
    """A tool call's card, as the API would send it (an MCP write needs no server here)."""
    sign_in(page, module_server)
    pending = {"approvals": [WRITE]}
    page.route(
        lambda url: url.endswith("/v1/approvals"),
        lambda route: route.fulfill(json=pending),
    )
    page.route(
        lambda url: url.endswith("/v1/approvals/shown-run/write"),
        lambda route: route.fulfill(json=WRITE),
    )
    page.reload()  # signed in still; the queue now comes from the routes
    page.locator("#queue button[data-run='shown-run'][data-step='write']").click()
    page.wait_for_selector("#card-diff-box", state="visible")
    assert page.text_content("#card-diff") == WRITE["card"]["diff"]
    assert page.locator("#card-diff span.add").count() == 2  # +++ is a header, not an addition
    assert page.locator("#card-diff span.del").count() == 1
    assert page.is_hidden("#card-command-box")  # a call has no command
    shown = page.text_content("#card-arguments")
    assert '"path": "/work/<b>notes</b>.md"' in shown
    assert page.text_content("#card-reason") == "writes <i>a file</i>"
    assert page.text_content("#card-approvers") == "anyone with an approver's token"
    assert page.text_content("#card-time").endswith("h left")  # days and hours
    assert page.locator("#card b, #card i, #card script").count() == 0
    assert page.evaluate("window.pwned") is None
    page.locator("#card").screenshot(path=str(ARTIFACTS / "web-card-diff.png"))


# --- questions from tools (MCP elicitation) ----------------------------------------------
ASK = ask_server.documents("q", "ask.py", timeout="1h")


def ask(server: LiveServer, run_id: str, step: str) -> None:
    """Submit a run of one step (YAML, indented as a step of a list) that calls the ask server."""
    (server.workspace / f"{run_id}.yaml").write_text(ASK + step)
    server.submit(f"{run_id}.yaml", run_id)


def question_row(run_id: str) -> str:
    """The selector of the run's question in the queue."""
    return f"#queue button.question[data-run='{run_id}']"


def told(server: LiveServer, run_id: str, step: str) -> Any:
    """What the ask server returned from the step's call: what it was told."""
    [found] = [s for s in server.run(run_id)["steps"] if s["step_id"] == step]
    return json.loads(found["outputs"]["text"])


def pending_question(server: LiveServer, run_id: str) -> dict[str, Any]:
    """The run's pending question, once it is asked."""

    def asked() -> dict[str, Any] | None:
        found = server.get("/v1/questions").json()["questions"]
        return next((q for q in found if q["run_id"] == run_id), None)

    return dict(wait_until(f"a question of {run_id}", asked))


def test_a_question_arrives_is_answered_in_its_form_and_the_server_gets_the_answer(
    page: Any, module_server: LiveServer
) -> None:
    server = module_server
    sign_in(page, server)
    page.evaluate("window.stayed = true")  # gone if the page reloaded
    ask(
        server,
        "web-ask",
        '    - {id: who, agent: a, call: q.ask, args: {message: "Who deploys?"}}\n',
    )
    row = page.locator(question_row("web-ask"))
    row.wait_for()  # it arrives through the event stream
    assert row.locator(".kind").text_content() == "question"
    assert row.text_content().startswith("questiona/q")
    assert "web-ask / who" in row.text_content()
    page.wait_for_selector(f"{question_row('web-ask')} .age:text('ago')")
    page.wait_for_selector(f"{question_row('web-ask')} .left:text('left')")
    row.click()
    page.wait_for_selector("#question-run:text('web-ask')")
    assert page.is_hidden("#card")
    assert page.text_content("#question-server") == "a/q"
    assert page.text_content("#question-step") == "who"
    assert page.text_content("#question-state") == "pending"
    assert page.text_content("#question-message") == "Who deploys?"
    assert page.text_content("#question-time").endswith("left")

    # the form, built from the fields
    field = "#question-fields .field[data-field='{}'] {}".format
    assert page.get_attribute(field("name", "input[type=text]"), "maxlength") == "40"
    assert page.text_content(field("name", "label")) == "Your name name *"
    assert page.locator(field("count", ".required")).count() == 0
    count = page.locator(field("count", "input[type=number]"))
    assert [count.get_attribute(a) for a in ("min", "max", "step")] == ["1", "9", "1"]
    options = page.locator(field("colour", "select option"))
    assert options.evaluate_all("os => os.map(o => o.value)") == ["", "red", "blue"]
    sure = page.locator(field("sure", "input[type=checkbox]"))
    assert sure.evaluate("box => box.indeterminate") is True  # not answered: omitted

    # a value the form refuses: the server's message shows next to the form
    page.fill(field("name", "input"), "Ada")
    page.fill(field("count", "input"), "12")
    page.click("#answer")
    page.wait_for_selector("#question-error.error:text('count: above the maximum (9)')")
    assert page.locator("#question-fields .field.invalid").get_attribute("data-field") == "count"
    assert (
        server.get("/v1/questions/web-ask/" + row.get_attribute("data-question")).json()["state"]
        == "pending"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#question").screenshot(path=str(ARTIFACTS / "web-question.png"))
    page.screenshot(path=str(ARTIFACTS / "web-question-page.png"), full_page=True)

    page.fill(field("count", "input"), "3")
    page.click("#answer")
    page.wait_for_selector("#question-error.ok:text('answered by alice')")
    page.wait_for_selector(question_row("web-ask"), state="detached")
    page.wait_for_selector("#question-state:text('answered by alice')")
    assert page.is_disabled("#answer") and page.is_disabled("#decline")
    page.wait_for_selector("#run-state:text('succeeded')")
    assert page.evaluate("window.stayed") is True
    server.wait_run("web-ask", "succeeded")
    # exactly what was typed, typed: a number as a number; the untouched fields left out
    assert told(server, "web-ask", "who") == {
        "action": "accept",
        "content": {"count": 3, "name": "Ada"},
    }


#: A question whose message, field title, description and choices hold markup.
HOSTILE_FORM = json.dumps(
    {
        "type": "object",
        "properties": {
            "pick": {
                "type": "string",
                "title": '<img src=x onerror="window.pwned=5">',
                "description": "<b>bold</b><script>window.pwned=6</script>",
                "enum": ["<i>a</i>", "<script>window.pwned=7</script>"],
            }
        },
    }
)


def test_markup_in_a_question_is_text_and_a_decline_tells_the_server_decline(
    page: Any, module_server: LiveServer
) -> None:
    server = module_server
    sign_in(page, server)
    step = {"id": "who", "agent": "a", "call": "q.ask_raw"}
    args = {"message": MARKUP, "schema": HOSTILE_FORM}
    ask(server, "web-ask-markup", f"    - {json.dumps({**step, 'args': args})}\n")
    page.locator(question_row("web-ask-markup")).click()
    page.wait_for_selector("#question-run:text('web-ask-markup')")
    assert page.text_content("#question-message") == MARKUP
    label = page.text_content("#question-fields .field[data-field='pick'] label")
    assert label.startswith('<img src=x onerror="window.pwned=5">')
    hint = page.text_content("#question-fields .field[data-field='pick'] .hint")
    assert hint.startswith("<b>bold</b><script>window.pwned=6</script>")
    options = page.locator("#question-fields select option")
    assert options.all_text_contents()[1:] == ["<i>a</i>", "<script>window.pwned=7</script>"]
    # nothing ran: no global set, no element made of the markup, one script on the page
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.scripts.length") == 1
    assert page.locator("main img, #question b, #question i, #question script").count() == 0

    page.fill("#question-reason", "not now")
    page.click("#decline")
    page.wait_for_selector("#question-error.ok:text('declined by alice')")
    page.wait_for_selector(question_row("web-ask-markup"), state="detached")
    server.wait_run("web-ask-markup", "succeeded")
    assert told(server, "web-ask-markup", "who") == {"action": "decline", "content": None}


def test_a_question_answered_elsewhere_leaves_the_page_and_its_link_opens_its_card(
    page: Any, module_server: LiveServer
) -> None:
    server = module_server
    ask(server, "web-ask-link", "    - {id: who, agent: a, call: q.ask}\n")
    question = pending_question(server, "web-ask-link")
    page.goto(f"http://127.0.0.1:{server.port}/#/questions/web-ask-link/{question['question_id']}")
    sign_in(page, server)
    page.wait_for_selector("#question-run:text('web-ask-link')")
    page.wait_for_selector(f"{question_row('web-ask-link')}.selected")
    page.fill("#question-fields .field[data-field='name'] input", "typed here")
    # bob answers from elsewhere (the API): the page follows without a reload
    path = f"/v1/questions/web-ask-link/{question['question_id']}/answer"
    assert server.post(path, {"content": {"name": "Bob"}}, who="bob").status == 200
    page.wait_for_selector(question_row("web-ask-link"), state="detached")
    page.wait_for_selector("#question-state:text('answered by bob')")
    name = "#question-fields .field[data-field='name'] input"
    assert page.is_disabled("#answer") and page.is_disabled(name)  # the fieldset is
    assert page.input_value(name) == "typed here"  # what was typed stays
    server.wait_run("web-ask-link", "succeeded")
    assert told(server, "web-ask-link", "who") == {"action": "accept", "content": {"name": "Bob"}}


def test_a_question_of_a_cancelled_run_leaves_the_queue_and_its_card_says_so(
    page: Any, module_server: LiveServer
) -> None:
    server = module_server
    sign_in(page, server)
    ask(server, "web-ask-cancel", "    - {id: who, agent: a, call: q.ask}\n")
    row = page.locator(question_row("web-ask-cancel"))
    question_id = row.get_attribute("data-question")
    row.click()
    page.wait_for_selector("#question-run:text('web-ask-cancel')")
    assert server.post("/v1/runs/web-ask-cancel/cancel").status == 200
    page.wait_for_selector(question_row("web-ask-cancel"), state="detached")
    page.wait_for_selector("#question-state:text('cancelled by luminaguard')")
    assert page.is_disabled("#answer") and page.is_disabled("#decline")
    assert server.get(f"/v1/questions/web-ask-cancel/{question_id}").json()["state"] == "cancelled"


def form_field(name: str, kind: str, **more: Any) -> dict[str, Any]:
    """A field of a question's form as the API shows it."""
    empty = {"title": "", "description": "", "required": False, "choices": []}
    return {"name": name, "kind": kind, **empty, "minimum": None, "maximum": None} | {
        "default": None,
        **more,
    }


FORM_QUESTION = {
    "run_id": "shown-run",
    "question_id": "q-1",
    "step_id": "pick",
    "server": "a/q",
    "state": "pending",
    "message": "Pick",
    "fields": [
        form_field("ratio", "number", minimum=0, maximum=1, default=0.5),
        form_field("tags", "choices", choices=["x", "y", "z"], default=["y"]),
        form_field("ok", "boolean", required=True),
        form_field("note", "string"),
        form_field("level", "choice", required=True, choices=["low", "high"], default="low"),
        form_field("flag", "boolean"),
    ],
    "asked": 0.0,
    "expires": 4102444800.0,  # 2100
    "decided": None,
    "who": None,
}


def test_each_kind_of_field_is_answered_typed(page: Any, module_server: LiveServer) -> None:
    """The answer a form of every kind sends, as the API would get it (routes stand in)."""
    sign_in(page, module_server)
    sent: list[Any] = []

    def answered(route: Any) -> None:
        sent.append(route.request.post_data_json)
        reply = {"run_id": "shown-run", "question_id": "q-1", "state": "answered"}
        route.fulfill(json=reply | {"by": "alice", "content": sent[-1]["content"]})

    page.route(
        lambda url: url.endswith("/v1/questions"),
        lambda route: route.fulfill(json={"questions": [FORM_QUESTION]}),
    )
    page.route(
        lambda url: url.endswith("/v1/questions/shown-run/q-1"),
        lambda route: route.fulfill(json=FORM_QUESTION),
    )
    page.route(lambda url: url.endswith("/v1/questions/shown-run/q-1/answer"), answered)
    page.reload()  # signed in still; the questions now come from the routes
    page.locator(question_row("shown-run")).click()
    page.wait_for_selector("#question-step:text('pick')")
    field = "#question-fields .field[data-field='{}'] {}".format
    assert page.get_attribute(field("ratio", "input"), "step") == "any"
    assert page.locator(field("tags", "input:checked")).evaluate_all(
        "i => i.map(x => x.value)"
    ) == ["y"]
    page.check(field("tags", "input[value='z']"))
    page.click(field("flag", "input"))  # from not answered to ticked
    page.click("#answer")
    page.wait_for_selector("#question-error.ok:text('answered by alice')")
    assert sent == [
        {"content": {"ratio": 0.5, "tags": ["y", "z"], "ok": False, "level": "low", "flag": True}}
    ]
    page.locator("#question").screenshot(path=str(ARTIFACTS / "web-question-kinds.png"))


def test_the_source_panel_says_when_the_server_follows_no_source(
    page: Any, module_server: LiveServer
) -> None:
    sign_in(page, module_server, "admin")
    page.wait_for_selector("#source-none:text('This server follows no source')")
    assert page.is_hidden("#source-box") and page.is_hidden("#source-condition")
    # a page that still shows a source (the server stopped following it) hears a 409
    followed = {
        "source": {"url": "/srv/x", "revision": "sha256:" + "ab" * 32, "attempted": None,
                   "condition": "Ready", "reason": "", "updated": 1.0},
        "policies_revision": "", "objects": [],
    }  # fmt: skip
    page.route(lambda url: url.endswith("/v1/gitops"), lambda route: route.fulfill(json=followed))
    page.reload()  # signed in still; the status now comes from the route
    page.wait_for_selector("#source-condition[data-condition='Ready']")
    assert page.text_content("#source-revision") == "ab" * 6
    page.click("#reconcile")
    page.wait_for_selector("#reconcile-message:text('follows no source')")

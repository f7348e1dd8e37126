"""Webhook notifications of approval requests, end to end: an in-process server on the
fake backend halts a Red step, and local HTTP receivers (stdlib, in a thread) get the
posts; every delivery is audited once, with the webhook's host only.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from luminaguard.compiler import Plan
from luminaguard.config.models.policy import Webhook
from luminaguard.errors import UsageError
from luminaguard.scheduler.redact import Redactor
from luminaguard.scheduler.states import RunState
from luminaguard.server.notify import Notifier, Request, Sender, body, card_link
from luminaguard.server.service import Server
from tests.scheduler.harness import TOKEN, Harness, compile_steps, connector
from tests.server.test_engine_decisions import until

PUBLIC = "https://lg.example:8420"
#: A Slack webhook's path is its secret: it must never be recorded.
SECRET_PATH = "/services/T0000/B0000/xoxsecretpath"
#: A Red step (no rule makes curl green) whose command holds the agent's secret value.
RED = f"""\
    - {{id: ship, agent: a, run: "curl -H 'Authorization: Bearer {TOKEN}' https://x.example"}}
"""


class Receiver:
    """A local HTTP server that records each post and answers from a script per path."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, object], bytes]] = []
        self.script: dict[str, list[int]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.path, dict(self.headers), data))
                answers = receiver.script.get(self.path, [])
                status = answers.pop(0) if answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self, path: str) -> list[dict[str, object]]:
        return [json.loads(data) for p, _, data in self.posts if p == path]

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def closed_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hooks(*pairs: tuple[str, str]) -> str:
    """The policy's approval settings with these webhooks (url, format)."""
    listed = ", ".join(f"{{url: '{url}', format: {fmt}}}" for url, fmt in pairs)
    return f"1h, notify: [{listed}]"


def serve_red(harness: Harness, folder: Path, approval: str, sender: Sender) -> tuple[Plan, Server]:
    """A server whose notifier uses ``sender``, and the Red plan to submit to it."""
    plan = compile_steps(folder, RED, approval)
    return plan, Server(
        harness.store,
        backend="fake",
        backends={"fake": harness.backend},
        environ=harness.environ,
        connector=connector({"a/tools": harness.tools}),
        notifier=Notifier(harness.store, harness.environ, PUBLIC, sender),
    )


def records(harness: Harness, event: str) -> list[dict[str, object]]:
    return [r.data for r in harness.store.audit.records("r", None, event)]


def quick(**options: object) -> Sender:
    return Sender(base=0.01, cap=0.05, timeout=5, **options)  # type: ignore[arg-type]


def test_slack_and_generic_posts_name_the_request_and_hold_no_secret(
    tmp_path: Path, receiver: Receiver
) -> None:
    harness = Harness(tmp_path / "state")
    slack, generic = receiver.url + SECRET_PATH, receiver.url + "/generic"
    approval = hooks((slack, "slack"), (generic, "generic"))
    plan, server = serve_red(harness, tmp_path, approval, quick())

    async def scenario() -> None:
        await server.start()
        try:
            server.engine.submit(plan, "r", "fake", {"name": "someone"})
            await until("two deliveries", lambda: len(records(harness, "notify.delivered")) == 2)
        finally:
            await server.stop(1)

    asyncio.run(scenario())
    assert harness.store.run("r").state is RunState.HALTED
    [message] = receiver.bodies(SECRET_PATH)
    assert message["text"] == (
        "Approval needed: run r, step ship (agent a)\n"
        "Rule (default) of policy p: no rule matched; red by default\n"
        "<https://lg.example:8420/#/approvals/r/ship|Open the approval card>"
    )
    [request] = receiver.bodies("/generic")
    [card] = [a.card for a in harness.store.approvals()]
    assert request == {
        "event": "approval.requested",
        "run_id": "r",
        "step_id": "ship",
        "action_hash": card["action_hash"],
        "agent": "a",
        "policy": "p",
        "rule": "(default)",
        "reason": "no rule matched; red by default",
        "expires": request["expires"],
        "link": "https://lg.example:8420/#/approvals/r/ship",
    }
    assert all(headers["Content-Type"] == "application/json" for _, headers, _ in receiver.posts)
    # no secret in any body, in any form the redactor knows
    for _, _, data in receiver.posts:
        assert Redactor([TOKEN])(data.decode()) == data.decode()
    # each delivery recorded once, by host: the webhook's path (its secret) nowhere
    delivered = records(harness, "notify.delivered")
    assert sorted((d["format"], d["attempts"], d["status"]) for d in delivered) == [
        ("generic", 1, 200),
        ("slack", 1, 200),
    ]
    assert {d["webhook"] for d in delivered} == {receiver.url}
    assert all(SECRET_PATH not in json.dumps(r.data) for r in harness.store.audit.records())


def test_a_receiver_failing_twice_gets_one_delivery_recorded(
    tmp_path: Path, receiver: Receiver
) -> None:
    harness = Harness(tmp_path / "state")
    receiver.script["/flaky"] = [500, 503]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    sender = Sender(sleep=sleep, base=1.0, cap=30.0, timeout=5)
    plan, server = serve_red(harness, tmp_path, hooks((receiver.url + "/flaky", "generic")), sender)

    async def scenario() -> None:
        await server.start()
        try:
            server.engine.submit(plan, "r", "fake", {"name": "someone"})
            await until("a delivery", lambda: records(harness, "notify.delivered"))
            await asyncio.sleep(0.2)  # nothing more is recorded
        finally:
            await server.stop(1)

    asyncio.run(scenario())
    assert len(receiver.bodies("/flaky")) == 3
    [delivered] = records(harness, "notify.delivered")
    assert (delivered["attempts"], delivered["status"]) == (3, 200)
    assert records(harness, "notify.failed") == []
    # the project's backoff: base * 2**n, jittered down by at most half
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0 and len(waits) == 2


def test_an_unreachable_receiver_ends_failed_without_holding_up_the_run(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "state")
    released = asyncio.Event()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await released.wait()

    url = f"http://127.0.0.1:{closed_port()}{SECRET_PATH}"
    sender = Sender(sleep=sleep, attempts=3, timeout=2)
    plan, server = serve_red(harness, tmp_path, hooks((url, "slack")), sender)

    async def scenario() -> None:
        await server.start()
        try:
            server.engine.submit(plan, "r", "fake", {"name": "someone"})
            await until("the first retry's wait", lambda: waits)
            # the run halted on its request while the delivery waits to try again
            await until("the drive to end", lambda: not server.engine.drives)
            assert harness.store.run("r").state is RunState.HALTED
            assert records(harness, "notify.failed") == []
            released.set()
            await until("the failure", lambda: records(harness, "notify.failed"))
        finally:
            await server.stop(1)

    asyncio.run(scenario())
    [failed] = records(harness, "notify.failed")
    assert failed["attempts"] == 3 and failed["status"] is None
    assert failed["webhook"] == url.removesuffix(SECRET_PATH)
    assert "ConnectionRefusedError" in str(failed["error"]) or "URLError" in str(failed["error"])
    assert all(SECRET_PATH not in json.dumps(r.data) for r in harness.store.audit.records())


def test_a_final_refusal_is_not_retried(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script["/gone"] = [404]

    async def scenario() -> None:
        delivery = await quick().deliver(receiver.url + "/gone", b"{}")
        assert (delivery.delivered, delivery.attempts, delivery.status) == (False, 1, 404)

    asyncio.run(scenario())
    assert len(receiver.bodies("/gone")) == 1


def test_a_redirect_is_not_followed(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script["/moved"] = [307]

    async def scenario() -> None:
        delivery = await quick().deliver(receiver.url + "/moved", b"{}")
        assert (delivery.delivered, delivery.status) == (False, 307)

    asyncio.run(scenario())


HOSTILE = Request(
    run_id="r",
    step_id="ship",
    action_hash="sha256:0",
    agent="a",
    policy="p",
    rule="deploy",
    reason="<!channel> & <https://evil.example|click here> " + TOKEN,
    expires=0.0,
    link=card_link(PUBLIC, "r", "ship"),
)


def test_slack_text_cannot_mention_or_link() -> None:
    text = HOSTILE.slack()["text"]
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click here&gt;" in text
    # the one link is ours
    assert text.count("<") == 1 and text.endswith("|Open the approval card>")


@pytest.mark.parametrize("fmt", ["slack", "generic"])
def test_every_body_passes_through_the_runs_redactor(fmt: str) -> None:
    hook = Webhook(url="https://hooks.example/x", format=fmt)  # type: ignore[arg-type]
    data = body(hook, HOSTILE, Redactor([TOKEN])).decode()
    assert TOKEN not in data and "***" in data


def test_ids_in_the_link_are_quoted() -> None:
    assert card_link("https://lg.example/", "r/../x", "a b") == (
        "https://lg.example/#/approvals/r%2F..%2Fx/a%20b"
    )
    assert card_link(None, "r", "s") is None


def test_a_webhook_written_into_runs_db_alone_is_not_posted_to(tmp_path: Path) -> None:
    """Only the plan as audited at the run's start names webhooks."""
    harness = Harness(tmp_path / "state")
    plain = compile_steps(tmp_path, RED)
    harness.store.create_run("r", plain, "fake")
    hooked = compile_steps(tmp_path, RED, hooks(("https://attacker.example/x", "generic")))
    harness.store.db.execute("UPDATE runs SET plan = ? WHERE id = 'r'", (hooked.to_json(),))
    notifier = Notifier(harness.store, harness.environ, PUBLIC, quick())
    with pytest.raises(UsageError, match=r"runs\.db was edited"):
        notifier._run("r")
    harness.store.close()

"""``luminaguard approve --server URL``: the queue of a real ``luminaguard serve`` (steps in
the namespace sandbox) approves and denies Red steps through the API, bound to the hash."""

from __future__ import annotations

import asyncio

from luminaguard.ui.remote import Remote
from luminaguard.ui.remote_desk import RemoteDesk
from luminaguard.ui.tui import ApprovalApp
from tests.integration.test_serve_api import HALTS, SEVERAL, events_of, halted
from tests.server.live import PATIENCE, LiveServer
from tests.ui.test_tui import text_of, until


def listed(app: ApprovalApp) -> list[tuple[str, str]]:
    return [(r.run_id, r.step_id) for r in app.requests]


def test_the_queue_of_a_server_approves_and_denies(live_server: LiveServer) -> None:
    halted(live_server, "one", HALTS)
    halted(live_server, "two", SEVERAL)
    digest = live_server.get("/v1/approvals/one/red").json()["action_hash"]
    desk = RemoteDesk(Remote(f"http://127.0.0.1:{live_server.port}", live_server.tokens["alice"]))
    desk.start()

    async def go() -> None:
        app = ApprovalApp(None, "", poll=0.05, desk=desk)
        async with app.run_test(size=(100, 40)) as pilot:
            await until(pilot, lambda: len(listed(app)) == 4, PATIENCE)
            assert listed(app)[0] == ("one", "red") and digest in text_of(app.card)
            await pilot.press("a")
            assert f"one red: approved by alice ({digest[:19]})" in text_of(app.status)
            await pilot.press("d", *"no", "enter")  # two red1
            assert "two red1: denied by alice" in text_of(app.status)
            await until(pilot, lambda: listed(app) == [("two", "red2"), ("two", "red3")])
            await pilot.press("t")  # the audit trail, from the server
            assert "approval.denied" in text_of(app.screen.query_one("Static"))

    asyncio.run(go())
    assert not desk.watcher.thread.is_alive()
    assert live_server.wait_run("one", "succeeded")["state"] == "succeeded"
    approved = [e for e in live_server.audit("one") if e["event"] == "approval.approved"]
    assert approved[0]["data"]["action_hash"] == digest
    assert approved[0]["data"]["approver"] == "alice"
    assert "approval.denied" in events_of(live_server, "two")

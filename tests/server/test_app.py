"""The HTTP API in-process (starlette's TestClient) on the fake backend.

Runs are driven by the server's own engine in the client's event loop; a test waits for
them with ``Api.settle``. The same API over real HTTP, with a real server process, is
tested in tests/integration.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from luminaguard.compiler import Plan
from luminaguard.hypervisor.fake import Outcome
from luminaguard.scheduler import decisions
from luminaguard.scheduler.states import RunState
from luminaguard.scheduler.store import RunStore
from luminaguard.server.app import build_app
from luminaguard.server.http import MAX_BODY
from luminaguard.server.models import (
    ApprovalList,
    ApprovalView,
    AuditList,
    BatchResults,
    Decided,
    ErrorBody,
    RunList,
    RunSummary,
    RunView,
)
from luminaguard.server.service import Server
from tests.scheduler.harness import Harness, compile_steps, connector
from tests.server.test_engine import RED, SHIP, TWO, settled

try:
    from starlette.testclient import TestClient
except (ImportError, RuntimeError):  # it needs httpx (or httpx2)
    pytest.skip("starlette's TestClient needs httpx", allow_module_level=True)
from starlette.types import ASGIApp, Receive, Scope, Send

T = TypeVar("T")


class Late:
    """An ASGI app whose application is set once the server exists.

    The server is made in the client's event-loop thread: a sqlite connection may only
    be used by the thread that opened it, and the app runs in that thread.
    """

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # nothing to start: the test starts the server
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.app is not None
        await self.app(scope, receive, send)


@dataclass
class Api:
    """A server on the harness's fakes, a client, and a token of each role."""

    harness: Harness
    server: Server
    client: TestClient
    workspace: Path
    tokens: dict[str, str]

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the server's thread (awaited if it is a coroutine)."""
        return self.client.portal.call(function, *args)  # type: ignore[union-attr,arg-type]

    def start(self) -> None:
        self.call(self.server.start)

    def settle(self) -> None:
        """Wait until the engine drives no run."""
        self.call(settled, self.server.engine)

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.auth(role), **kwargs)

    def post(self, path: str, body: Any = None, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.post(path, json=body, headers=self.auth(role), **kwargs)

    def submit(self, plan: Plan, run_id: str = "r", **fields: Any) -> Any:
        body = {"plan": plan.model_dump(mode="json"), "run_id": run_id, **fields}
        return self.post("/v1/runs", body)


def _served(state: Path, workspace: Path | None) -> tuple[Harness, Server]:
    harness = Harness(state)
    harness.backend.on("echo one", _out("one"))
    harness.backend.on("echo two", _out("two"))
    harness.backend.on("echo data > /work/data.txt")
    harness.backend.on(SHIP)
    harness.backend.on("cat /work/shipped.txt", _out("data"))
    server = Server(
        harness.store,
        backend="fake",
        workspace=workspace,
        environ=harness.environ,
        backends={"fake": harness.backend},
        connector=connector({"a/tools": harness.tools}),
    )
    return harness, server


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    late = Late()
    with TestClient(late) as client:
        harness, server = client.portal.call(_served, tmp_path / "state", workspace)  # type: ignore[union-attr]
        late.app = build_app(server)
        tokens = {
            role: server.tokens.create(role, role)
            for role in ("admin", "viewer", "approver", "submitter")
        }
        yield Api(harness, server, client, workspace, tokens)
        client.portal.call(server.stop, 1.0)  # type: ignore[union-attr]
        client.portal.call(harness.store.close)  # type: ignore[union-attr]
        # closed in its thread: the session's tracker of stores would close it from this one
        harness.store.close = lambda: None  # type: ignore[method-assign]


def _out(text: str) -> Outcome:
    return Outcome(stdout=f"{text}\n")


def plan_of(api: Api, steps: str) -> Plan:
    return compile_steps(api.workspace, steps)


def problem(response: Any) -> ErrorBody:
    return ErrorBody.model_validate(response.json())


def test_liveness_readiness_and_metrics(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "detail": ""}
    response = api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    api.start()
    assert api.client.get("/readyz").json()["status"] == "ready"
    metrics = api.get("/metrics", role="viewer")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'luminaguard_runs{state="running"} 0.0' in metrics.text


def test_a_token_is_needed_and_its_role_must_allow_the_request(api: Api) -> None:
    response = api.client.get("/v1/runs")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert problem(response).error == "a valid bearer token is needed"
    bad = {"Authorization": "Bearer lg_" + "x" * 43}
    assert api.client.get("/v1/runs", headers=bad).status_code == 401
    assert api.client.get("/v1/runs", headers={"Authorization": "Basic abc"}).status_code == 401
    assert api.get("/v1/runs", role="viewer").status_code == 200
    refused = api.post("/v1/runs", {"paths": ["w.yaml"]}, role="viewer")
    assert refused.status_code == 403
    assert problem(refused).error == "role viewer may not submit"


def test_a_submitted_plan_runs_and_is_readable(api: Api) -> None:
    api.start()
    response = api.submit(plan_of(api, TWO))
    assert response.status_code == 201
    assert RunSummary.model_validate(response.json()).id == "r"
    api.settle()
    run = RunView.model_validate(api.get("/v1/runs/r", role="viewer").json())
    assert run.state is RunState.SUCCEEDED
    assert [(s.step_id, s.state, s.outputs["stdout"]) for s in run.steps] == [
        ("one", "succeeded", "one\n"),
        ("two", "succeeded", "two\n"),
    ]
    assert [(s.step_id, s.needs, s.risk) for s in run.steps] == [
        ("one", [], "green"),
        ("two", ["one"], "green"),
    ]
    listed = RunList.model_validate(api.get("/v1/runs").json())
    assert [r.id for r in listed.runs] == ["r"]
    audit = AuditList.model_validate(api.get("/v1/runs/r/audit").json())
    assert audit.records[0].event == "run.created"
    assert [r.seq for r in audit.records] == sorted(r.seq for r in audit.records)
    assert 'luminaguard_runs{state="succeeded"} 1.0' in api.get("/metrics").text
    created = api.submit(plan_of(api, TWO))
    assert created.status_code == 409
    assert problem(created).error == "run 'r' exists already"


def test_paths_are_compiled_in_the_workspace(api: Api) -> None:
    api.start()
    plan_of(api, TWO)  # writes workspace/w.yaml
    response = api.post("/v1/runs", {"paths": ["w.yaml"], "workload": "w"})
    assert response.status_code == 201
    run_id = response.json()["id"]
    assert run_id.startswith("w-")
    api.settle()
    assert api.get(f"/v1/runs/{run_id}").json()["state"] == "succeeded"


@pytest.mark.parametrize(
    ("paths", "status", "message"),
    [
        (["../w.yaml"], 422, "a path is outside the server's workspace"),
        (["/etc/passwd"], 422, "a path is outside the server's workspace"),
        (["nope.yaml"], 422, "no such file or folder in the workspace"),
        (["n" * 300], 422, "a path cannot be read: File name too long"),
        (["."], 422, "a run takes one workload; choose with workload (none)"),
    ],
)
def test_paths_that_cannot_make_a_run_are_refused(
    api: Api, paths: list[str], status: int, message: str
) -> None:
    response = api.post("/v1/runs", {"paths": paths})
    assert response.status_code == status
    assert problem(response).error == message


def test_a_path_needs_a_workspace(api: Api) -> None:
    api.server.workspace = None
    response = api.post("/v1/runs", {"paths": ["w.yaml"]})
    assert response.status_code == 422
    assert "no workspace" in problem(response).error


def test_bodies_that_are_not_a_run_are_refused(api: Api) -> None:
    plan = plan_of(api, TWO)
    text = plan.model_dump(mode="json")
    tampered = {**text, "workload": "other"}
    cases: list[tuple[Any, int, str]] = [
        ({}, 422, "give either a compiled plan or paths"),
        ({"plan": text, "paths": ["w.yaml"]}, 422, "give either a compiled plan or paths"),
        ({"plan": {"steps": 1}}, 422, "the plan is not valid"),
        ({"plan": tampered}, 422, "the plan's hash does not match its content"),
        ({"plan": text, "run_id": ".."}, 422, "is not a name"),
        ({"plan": text, "run_id": "a/b"}, 422, "the request body is not valid"),
        ({"plan": text, "backend": "mars"}, 422, "unknown backend 'mars'"),
        ({"plan": text, "colour": "red"}, 422, "the request body is not valid"),
        ({"paths": ["a\x00b"]}, 422, "the request body is not valid"),
    ]
    for body, status, message in cases:
        response = api.post("/v1/runs", body)
        assert (response.status_code, message in problem(response).error) == (status, True), body
    unknown = problem(api.post("/v1/runs", {"plan": text, "colour": "red"}))
    assert [(f.field, f.message) for f in unknown.fields] == [
        ("colour", "Extra inputs are not permitted")
    ]
    headers = {**api.auth(), "Content-Type": "text/plain"}
    assert api.client.post("/v1/runs", content=b"{}", headers=headers).status_code == 415
    headers = {**api.auth(), "Content-Type": "application/json"}
    assert api.client.post("/v1/runs", content=b"{", headers=headers).status_code == 422
    large = b" " * (MAX_BODY + 1)
    assert api.client.post("/v1/runs", content=large, headers=headers).status_code == 413
    assert api.call(api.harness.store.run_states) == {}


def test_a_red_step_is_approved_through_the_api_and_the_run_resumes(api: Api) -> None:
    api.start()
    assert api.submit(plan_of(api, RED)).status_code == 201
    api.settle()
    assert api.get("/v1/runs/r").json()["state"] == "halted"
    [pending] = ApprovalList.model_validate(api.get("/v1/approvals").json()).approvals
    assert (pending.run_id, pending.step_id, pending.state) == ("r", "ship", "pending")
    card = ApprovalView.model_validate(api.get("/v1/approvals/r/ship").json())
    assert card.card["arguments"] == {"command": SHIP}
    digest = card.action_hash
    path = "/v1/approvals/r/ship/approve"
    assert api.post(path, {"action_hash": "sha256:other"}, role="approver").status_code == 409
    assert api.post(path, {"action_hash": digest}, role="viewer").status_code == 403
    response = api.post(path, {"action_hash": digest, "reason": "fine"}, role="approver")
    assert response.status_code == 200
    decided = Decided.model_validate(response.json())
    assert (decided.verdict, decided.by) == ("approved", "approver")
    api.settle()
    assert api.get("/v1/runs/r").json()["state"] == "succeeded"
    again = api.post(path, {"action_hash": digest}, role="approver")
    assert again.status_code == 409
    assert problem(again).error == "the request was approved already"
    assert api.get("/v1/approvals/r/ship").json()["state"] == "approved"
    assert api.get("/v1/approvals").json() == {"approvals": []}


def test_unknown_runs_steps_and_requests_are_404(api: Api) -> None:
    api.start()
    api.submit(plan_of(api, TWO))
    api.settle()
    for path in ("/v1/runs/nope", "/v1/runs/nope/audit", "/v1/approvals/nope/ship"):
        assert api.get(path).status_code == 404, path
    assert api.post("/v1/runs/nope/cancel").status_code == 404
    response = api.get("/v1/approvals/r/one")
    assert (response.status_code, problem(response).error) == (
        404,
        "step 'one' of run 'r' has no approval request",
    )
    missing = api.client.get("/v1/nothing")
    assert (missing.status_code, problem(missing).error) == (404, "no such endpoint")


def test_decisions_in_a_batch_succeed_or_fail_alone(api: Api) -> None:
    api.start()
    plan = plan_of(api, RED)
    api.submit(plan, "r1")
    api.submit(plan, "r2")
    api.settle()
    hashes = {a["run_id"]: a["action_hash"] for a in api.get("/v1/approvals").json()["approvals"]}
    batch = [
        {"run_id": "r1", "step_id": "ship", "action_hash": hashes["r1"], "verdict": "deny"},
        {"run_id": "r2", "step_id": "ship", "action_hash": "sha256:x", "verdict": "approve"},
        {"run_id": "r3", "step_id": "ship", "action_hash": hashes["r2"], "verdict": "approve"},
    ]
    response = api.post("/v1/approvals/decide", {"decisions": batch}, role="approver")
    assert response.status_code == 200
    results = BatchResults.model_validate(response.json()).results
    assert [r.status for r in results] == [200, 409, 404]
    assert results[0].decided is not None and results[0].decided.verdict == "denied"
    api.settle()
    assert api.get("/v1/runs/r1").json()["state"] == "failed"
    assert api.get("/v1/runs/r2").json()["state"] == "halted"
    deny = api.post("/v1/approvals/r2/ship/deny", {"action_hash": hashes["r2"]}, role="approver")
    assert deny.json()["verdict"] == "denied"
    assert api.post("/v1/approvals/decide", {"decisions": []}).status_code == 422


def test_a_halted_run_is_cancelled_once(api: Api) -> None:
    api.start()
    api.submit(plan_of(api, RED))
    api.settle()
    response = api.post("/v1/runs/r/cancel")
    assert response.status_code == 200
    assert RunSummary.model_validate(response.json()).state is RunState.FAILED
    again = api.post("/v1/runs/r/cancel")
    assert (again.status_code, problem(again).error) == (409, "run r has ended (failed)")
    steps = {s["step_id"]: s["state"] for s in api.get("/v1/runs/r").json()["steps"]}
    assert steps == {"make": "succeeded", "ship": "denied", "after": "skipped"}
    assert api.call(api.harness.store.audit.verify) == []


def test_another_method_is_405_naming_the_allowed_ones(api: Api) -> None:
    response = api.client.request("DELETE", "/v1/runs", headers=api.auth())
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert problem(response).error == "method not allowed"


@pytest.mark.parametrize("where", ["header", "query"])
@pytest.mark.parametrize("value", ["abc", "\u00b2", "1" * 19])
def test_an_event_id_must_be_ascii_digits(api: Api, where: str, value: str) -> None:
    if where == "header":
        headers: dict[str, Any] = {**api.auth(), "Last-Event-ID": value.encode("latin-1")}
        response = api.client.get("/v1/events", headers=headers)
    else:
        response = api.get("/v1/events", params={"after": value})
    assert response.status_code == 422
    assert problem(response).error == "Last-Event-ID (or after) must be an event id"


def test_a_stopped_server_is_not_ready_and_takes_no_runs(api: Api) -> None:
    api.start()
    api.client.portal.call(api.server.stop, 1.0)  # type: ignore[union-attr]
    assert api.client.get("/readyz").status_code == 503
    response = api.submit(plan_of(api, TWO))
    assert (response.status_code, problem(response).error) == (
        503,
        "the server is stopping: no new runs",
    )


def test_a_decision_made_by_a_command_reaches_a_running_server(tmp_path: Path) -> None:
    """Through the state folder's watcher: no request to the server is made."""
    harness = Harness(tmp_path / "state")
    harness.backend.on("echo data > /work/data.txt")
    harness.backend.on(SHIP)
    harness.backend.on("cat /work/shipped.txt", _out("data"))
    plan = compile_steps(tmp_path, RED)

    async def scenario() -> None:
        server = Server(
            harness.store,
            backend="fake",
            environ=harness.environ,
            backends={"fake": harness.backend},
            connector=connector({"a/tools": harness.tools}),
        )
        await server.start()
        seen = []
        server.hub.listeners.append(lambda event: seen.append(event.kind))
        server.engine.submit(plan, "r", "fake", {"name": "submitter"})
        await settled(server.engine)
        assert harness.store.run("r").state is RunState.HALTED
        other = RunStore(harness.state)  # as `luminaguard approve` in another process
        try:
            decisions.approve(other, "r", "ship", "alice", "from the command line")
        finally:
            other.close()
        async with asyncio.timeout(30):
            while harness.store.run("r").state is not RunState.SUCCEEDED:
                await asyncio.sleep(0.05)
        await settled(server.engine)
        await server.stop(1.0)
        assert "approval.approved" in seen and "run.succeeded" in seen

    try:
        asyncio.run(scenario())
        assert harness.store.audit.verify() == []
    finally:
        harness.store.close()
    assert harness.backend.commands.count(SHIP) == 1


def test_a_tokens_file_made_public_refuses_every_request_with_503(api: Api) -> None:
    api.server.tokens.path.chmod(0o644)  # someone loosened it: no token is trusted from it
    answer = api.get("/v1/runs")
    assert answer.status_code == 503
    assert "tokens file is not usable" in answer.json()["error"]
    assert api.client.get("/healthz").status_code == 200  # the process still answers


def test_only_an_admin_submits_a_compiled_plan(api: Api) -> None:
    api.start()
    body = {"plan": plan_of(api, TWO).model_dump(mode="json"), "run_id": "r"}
    refused = api.post("/v1/runs", body, role="submitter")
    assert refused.status_code == 403
    assert "only an admin token may submit a compiled plan" in problem(refused).error
    assert api.get("/v1/runs").json()["runs"] == []  # nothing recorded
    assert api.post("/v1/runs", body, role="admin").status_code == 201


# --- the approval page ---------------------------------------------------------------------
def test_the_page_is_served_without_a_token_under_a_strict_policy(api: Api) -> None:
    page = api.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "connect-src 'self';" in policy
    assert "unsafe" not in policy  # no inline script, no eval
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    # the page holds no data and runs no inline script: one script, from a file
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/static/app.js" defer>']
    script = api.client.get("/static/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["content-security-policy"] == policy
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script.text, sink
    assert "sessionStorage" in script.text and "Authorization" in script.text
    assert api.client.get("/static/app.css").headers["content-type"].startswith("text/css")
    for missing in ("/static/nope.js", "/static/page.py", "/static/..%2fpage.py"):
        assert api.client.get(missing).status_code == 404, missing
    assert api.client.post("/").status_code == 405


def test_several_approvers_through_the_api(api: Api) -> None:
    """``min_approvals: 2``: two distinct token names; the submitter may not be one."""
    bob = {"Authorization": f"Bearer {api.call(api.server.tokens.create, 'bob2', 'approver')}"}
    approval = (
        "1h, min_approvals: 2, prevent_self_approval: true,"
        " approvers: ['role:approver', 'role:admin']"
    )
    plan = compile_steps(api.workspace, RED, approval=approval)
    api.start()
    for run_id in ("r", "r2"):
        assert api.submit(plan, run_id).status_code == 201  # submitted by "admin"
    api.settle()
    digest = api.get("/v1/approvals/r/ship").json()["action_hash"]
    path, body = "/v1/approvals/r/ship/approve", {"action_hash": digest}
    refused = api.post(path, body, role="admin")  # listed by its role, but the submitter
    assert refused.status_code == 403 and "started this run" in problem(refused).error
    refused = api.post(path, body, role="viewer")  # no role listed (nor the permission)
    assert refused.status_code == 403
    first = Decided.model_validate(api.post(path, body, role="approver").json())
    assert (first.verdict, first.approved_by, first.needed) == ("counted", ["approver"], 1)
    again = api.post(path, body, role="approver")
    assert again.status_code == 409 and "counts once" in problem(again).error
    view = ApprovalView.model_validate(api.get("/v1/approvals/r/ship").json())
    assert (view.state, view.min_approvals, view.approved_by) == ("pending", 2, ["approver"])
    assert view.card["approved_by"] == ["approver"]
    api.settle()
    assert api.get("/v1/runs/r").json()["state"] == "halted"
    second = Decided.model_validate(api.client.post(path, json=body, headers=bob).json())
    assert (second.verdict, second.approved_by, second.needed) == (
        "approved",
        ["approver", "bob2"],
        0,
    )
    api.settle()
    assert api.get("/v1/runs/r").json()["state"] == "succeeded"
    # one denial after one approval denies
    digest2 = api.get("/v1/approvals/r2/ship").json()["action_hash"]
    path2, body2 = "/v1/approvals/r2/ship/approve", {"action_hash": digest2}
    assert api.post(path2, body2, role="approver").json()["verdict"] == "counted"
    denied = api.client.post("/v1/approvals/r2/ship/deny", json=body2, headers=bob)
    assert denied.json()["verdict"] == "denied"
    api.settle()
    assert api.get("/v1/runs/r2").json()["state"] == "failed"

"""The HTTP API of a real ``luminaguard serve``: every endpoint, its refusals, its races.

One server (module-scoped) serves every test here; each test writes its own workload
into the server's workspace and uses its own run ids. Steps run in real sandboxes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from luminaguard.compiler import compile_paths
from tests.conftest import ROOT, CliRunner
from tests.server.live import (
    PATIENCE,
    LiveServer,
    Reply,
    child_environment,
    cli_quietly,
    wait_until,
)

HEAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  approval: {approvers: [alice], timeout: %(timeout)s}
  rules:
    - id: logs
      match: {program: [sleep, echo, '['], redirects: {path: /work/*.log}}
      risk: green
      reason: logs only
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
# three Red steps side by side, each its own action (so its own hash)
SEVERAL = "".join(
    f'    - {{id: red{n}, agent: a, run: "touch /work/{n}.flag; echo x >> /work/red{n}.log",'
    " needs: [first]}\n"
    for n in (1, 2, 3)
)
GREEN = '    - {id: second, agent: a, run: "echo x >> /work/second.log", needs: [first]}\n'
LOGS = ("first", "red", "last")


def workload(server: LiveServer, name: str, steps: str, timeout: str = "1h") -> str:
    """Write the workload into the server's workspace; its path there."""
    (server.workspace / name).write_text(HEAD % {"timeout": timeout} + steps)
    return name


@pytest.fixture(scope="module")
def server(module_server: LiveServer) -> LiveServer:
    return module_server


def halted(server: LiveServer, run_id: str, steps: str = HALTS) -> dict[str, Any]:
    """Submit a run that halts at its Red step(s); the run once halted."""
    path = workload(server, f"{run_id}.yaml", steps)
    submitted = server.submit(path, run_id)
    assert submitted["id"] == run_id and submitted["workload"] == "w"
    return server.wait_run(run_id, "halted")


def events_of(server: LiveServer, run_id: str) -> list[str]:
    return [record["event"] for record in server.audit(run_id)]


# --- open endpoints, authentication, roles ------------------------------------------------
def test_health_and_readiness_need_no_token(server: LiveServer) -> None:
    assert server.get("/healthz", who=None).json() == {"status": "ok", "detail": ""}
    ready = server.get("/readyz", who=None)
    assert ready.status == 200 and ready.json()["status"] == "ready"


@pytest.mark.parametrize(
    "path", ["/v1/runs", "/v1/approvals", "/metrics", "/v1/runs/any", "/v1/events"]
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer lg_" + "x" * 43, "Basic YWxpY2U6c2VjcmV0", "Bearer "]
)
def test_401_without_a_valid_token(server: LiveServer, path: str, authorization: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    reply = server.request("GET", path, who=None, headers=headers)
    assert reply.status == 401, reply
    assert reply.headers["www-authenticate"] == "Bearer"
    assert "token" in reply.json()["error"]


def test_401_for_a_token_of_another_state_folder(server: LiveServer, tmp_path: Path) -> None:
    code, out = cli_quietly("token", "create", "alice", "--role", "admin", "--state", str(tmp_path))
    assert code == 0
    foreign = out.splitlines()[0]
    reply = server.request(
        "GET", "/v1/runs", who=None, headers={"Authorization": f"Bearer {foreign}"}
    )
    assert reply.status == 401


def test_403_for_roles_without_the_permission(server: LiveServer) -> None:
    run = halted(server, "roles")
    body = {"paths": ["roles.yaml"], "run_id": "roles-again"}
    assert server.post("/v1/runs", body, who="viewer").status == 403
    assert server.post("/v1/runs", body, who="alice").status == 403  # an approver cannot submit
    digest = server.request_of(run["id"], "red")["action_hash"]
    decision = {"action_hash": digest}
    for who in ("viewer", "submitter"):
        reply = server.post("/v1/approvals/roles/red/approve", decision, who=who)
        assert reply.status == 403, reply
        assert "may not approve" in reply.json()["error"]
        assert server.post("/v1/approvals/roles/red/deny", decision, who=who).status == 403
        batch = {
            "decisions": [{"run_id": "roles", "step_id": "red", **decision, "verdict": "deny"}]
        }
        assert server.post("/v1/approvals/decide", batch, who=who).status == 403
    assert server.post("/v1/runs/roles/cancel", who="viewer").status == 403
    assert server.post("/v1/runs/roles/cancel", who="alice").status == 403
    # nothing was recorded: the request still waits, the run did not move
    assert server.request_of("roles", "red")["state"] == "pending"
    assert "roles-again" not in {r["id"] for r in server.get("/v1/runs").json()["runs"]}
    assert server.run("roles")["state"] == "halted"


def test_403_for_an_approver_the_policy_does_not_name(server: LiveServer) -> None:
    halted(server, "strangers")
    card = server.request_of("strangers", "red")["card"]
    assert card["approvers"] == ["alice"]
    for who in ("bob", "admin"):  # the role allows approving; the policy names only alice
        for verdict in ("approve", "deny"):
            reply = server.decide("strangers", "red", verdict, who=who)
            assert reply.status == 403, reply
            assert f"'{who}' is not among the approvers" in reply.json()["error"]
    assert server.request_of("strangers", "red")["state"] == "pending"
    assert not {"approval.approved", "approval.denied"} & set(events_of(server, "strangers"))
    assert server.decide("strangers", "red", "deny").status == 200
    assert server.wait_run("strangers", "failed")["state"] == "failed"


# --- a run halted at its Red step -----------------------------------------------------------
def test_approval_through_the_api_continues_the_run(server: LiveServer) -> None:
    run = halted(server, "api")
    assert {s["step_id"]: s["state"] for s in run["steps"]} == {
        "first": "succeeded",
        "red": "awaiting_approval",
        "last": "pending",
    }
    listed = [a for a in server.get("/v1/approvals").json()["approvals"] if a["run_id"] == "api"]
    assert [(a["step_id"], a["state"]) for a in listed] == [("red", "pending")]
    request = server.request_of("api", "red")
    assert request == listed[0]
    assert request["card"]["action"].startswith("$ touch /work/red.flag")
    assert request["action_hash"] == request["card"]["action_hash"]

    reply = server.decide("api", "red")
    assert reply.status == 200, reply
    assert reply.json() == {
        "run_id": "api",
        "step_id": "red",
        "action_hash": request["action_hash"],
        "verdict": "approved",
        "by": "alice",
        "approved_by": ["alice"],
        "needed": 0,
    }
    done = server.wait_run("api", "succeeded", "failed")  # no resume: the server goes on
    assert done["state"] == "succeeded", done
    assert server.lines("api", *LOGS) == dict.fromkeys(LOGS, 1)
    assert server.request_of("api", "red")["state"] == "approved"
    assert [r["id"] for r in server.get("/v1/runs").json()["runs"]].count("api") == 1
    records = server.audit("api")
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    events = [r["event"] for r in records]
    assert events[0] == "run.created" and events[-1] == "run.succeeded"
    approved = [r for r in records if r["event"] == "approval.approved"]
    assert [r["data"]["approver"] for r in approved] == ["alice"]


def test_approval_with_the_cli_continues_the_run(server: LiveServer, cli: CliRunner) -> None:
    halted(server, "by-cli")
    result = cli("approve", "by-cli", "red", "--state", str(server.state), "--as", "alice")
    assert result.code == 0, result.out + result.err
    done = server.wait_run("by-cli", "succeeded", "failed")  # the server saw the CLI's write
    assert done["state"] == "succeeded", done
    assert server.lines("by-cli", *LOGS) == dict.fromkeys(LOGS, 1)
    assert server.request_of("by-cli", "red")["approver"] == "alice"


# Makes every fsync and fdatasync of a process take a quarter of a second: a busy disk.
SLOW_SYNC = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
static void wait_(void) { struct timespec t = {0, 250000000}; nanosleep(&t, 0); }
int fsync(int fd) { wait_(); return ((int (*)(int))dlsym(RTLD_NEXT, "fsync"))(fd); }
int fdatasync(int fd) { wait_(); return ((int (*)(int))dlsym(RTLD_NEXT, "fdatasync"))(fd); }
"""


def test_approval_with_the_cli_on_a_slow_disk_continues_the_run(
    server: LiveServer, tmp_path: Path
) -> None:
    """The CLI's log write wakes the server before its commit is visible: not missed.

    SQLite writes the transaction to the log (a file event), syncs it, and only then
    publishes the commit (no file event): with a slow sync, a server that looked at
    once saw nothing new and was never woken again, the run halted for good.
    """
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the slow-sync library")
    source, library = tmp_path / "slow_sync.c", tmp_path / "slow_sync.so"
    source.write_text(SLOW_SYNC)
    subprocess.run([compiler, "-shared", "-fPIC", "-o", library, source, "-ldl"], check=True)
    halted(server, "slow-disk")
    argv = [sys.executable, "-m", "luminaguard", "approve", "slow-disk", "red"]
    argv += ["--state", str(server.state), "--as", "alice"]
    env = {**child_environment(), "LD_PRELOAD": str(library)}
    approved = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    done = server.wait_run("slow-disk", "succeeded", "failed", limit=30)
    assert done["state"] == "succeeded", done


def test_409_for_a_second_decision(server: LiveServer) -> None:
    halted(server, "twice")
    assert server.decide("twice", "red").status == 200
    server.wait_run("twice", "succeeded")
    digest = server.request_of("twice", "red")["action_hash"]
    for verdict in ("approve", "deny"):
        reply = server.post(
            f"/v1/approvals/twice/red/{verdict}", {"action_hash": digest}, who="alice"
        )
        assert reply.status == 409, reply
        assert "approved already" in reply.json()["error"]
    assert events_of(server, "twice").count("approval.approved") == 1


def test_409_for_a_stale_action_hash(server: LiveServer) -> None:
    halted(server, "stale")
    request = server.request_of("stale", "red")
    other = "sha256:" + "0" * 64
    assert other != request["action_hash"]
    reply = server.post("/v1/approvals/stale/red/approve", {"action_hash": other}, who="alice")
    assert reply.status == 409, reply
    assert "action changed" in reply.json()["error"]
    assert server.request_of("stale", "red")["state"] == "pending"
    assert server.run("stale")["state"] == "halted"
    assert server.decide("stale", "red", "deny").status == 200
    server.wait_run("stale", "failed")


def test_concurrent_approvals_one_wins(server: LiveServer) -> None:
    """Two approvals of one request sent at once: one 200, one 409, one record."""
    halted(server, "race", SEVERAL)
    for step in ("red1", "red2", "red3"):
        digest = server.request_of("race", step)["action_hash"]
        path = f"/v1/approvals/race/{step}/approve"
        statuses = at_once(server, path, {"action_hash": digest}, count=2)
        assert sorted(statuses) == [200, 409], (step, statuses)
    server.wait_run("race", "succeeded")
    events = events_of(server, "race")
    assert events.count("approval.approved") == 3
    assert server.lines("race", "red1", "red2", "red3") == {"red1": 1, "red2": 1, "red3": 1}


def at_once(server: LiveServer, path: str, body: dict[str, Any], count: int) -> list[int]:
    """POST ``body`` to ``path`` from ``count`` threads released together; the statuses."""
    data = json.dumps(body).encode()
    headers = {**server.headers("alice"), "Content-Type": "application/json"}
    connections = [server.connection() for _ in range(count)]
    for connection in connections:
        connection.connect()  # connected before the start: only the requests race
    start = threading.Barrier(count)
    statuses: list[int] = []

    def send(connection: http.client.HTTPConnection) -> None:
        start.wait(timeout=PATIENCE)
        connection.request("POST", path, body=data, headers=headers)
        statuses.append(connection.getresponse().status)

    threads = [threading.Thread(target=send, args=(c,)) for c in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=PATIENCE)
    for connection in connections:
        connection.close()
    assert len(statuses) == count, "a request got no answer"
    return statuses


def test_batch_decisions_each_bound_to_its_own_hash(server: LiveServer) -> None:
    halted(server, "batch", SEVERAL)
    digests = {s: server.request_of("batch", s)["action_hash"] for s in ("red1", "red2", "red3")}

    def item(step: str, digest: str, verdict: str) -> dict[str, str]:
        return {"run_id": "batch", "step_id": step, "action_hash": digest, "verdict": verdict}

    body = {
        "decisions": [
            item("red1", digests["red2"], "approve"),  # red2's hash: refused for red1
            item("red1", digests["red1"], "approve"),
            item("red2", digests["red2"], "deny"),
            item("red2", digests["red2"], "approve"),  # decided just before
            item("nope", digests["red3"], "approve"),
            {**item("red3", digests["red3"], "approve"), "run_id": "no-such-run"},
        ]
    }
    reply = server.post("/v1/approvals/decide", body, who="alice")
    assert reply.status == 200, reply
    results = reply.json()["results"]
    assert [r["status"] for r in results] == [409, 200, 200, 409, 404, 404]
    assert "action changed" in results[0]["error"]
    assert results[1]["decided"] == {
        "run_id": "batch",
        "step_id": "red1",
        "action_hash": digests["red1"],
        "verdict": "approved",
        "by": "alice",
        "approved_by": ["alice"],
        "needed": 0,
    }
    assert results[2]["decided"]["verdict"] == "denied"
    assert results[2]["decided"]["action_hash"] == digests["red2"]
    # a batch by someone the policy does not name decides nothing
    reply = server.post(
        "/v1/approvals/decide", {"decisions": [item("red3", digests["red3"], "approve")]}, who="bob"
    )
    assert reply.status == 200 and reply.json()["results"][0]["status"] == 403
    assert server.request_of("batch", "red3")["state"] == "pending"
    assert server.decide("batch", "red3").status == 200
    done = server.wait_run("batch", "failed")
    states = {s["step_id"]: s["state"] for s in done["steps"]}
    assert states == {
        "first": "succeeded",
        "red1": "succeeded",
        "red2": "denied",
        "red3": "succeeded",
    }
    assert server.lines("batch", "red1", "red2") == {"red1": 1, "red2": 0}


# --- expiry ---------------------------------------------------------------------------------
def test_an_unanswered_request_expires_on_time(server: LiveServer) -> None:
    """With nobody asking, the server itself denies the step when the request expires."""
    path = workload(server, "expiry.yaml", HALTS, timeout="2s")
    created = server.submit(path, "expiry")
    seq = server.audit("expiry")[0]["seq"]
    with server.events(after=seq - 1) as stream:  # listening only: no request touches the run
        requested = stream.wait_for(
            "approval.requested",
            lambda e: e["run_id"] == "expiry" and e["event"] == "approval.requested",
        )
        ended = stream.wait_for(
            "run.failed",
            lambda e: (
                e["run_id"] == "expiry"
                and e["event"].startswith("run.")
                and e["state"] in ("failed", "succeeded")
            ),
        )
    assert ended["state"] == "failed", stream.seen
    records = server.audit("expiry")
    [asked] = [r for r in records if r["event"] == "approval.requested"]
    [expired] = [r for r in records if r["event"] == "approval.expired"]
    assert expired["data"]["approver"] == "luminaguard"
    expires = asked["data"]["expires"]
    assert expires - asked["time"] == pytest.approx(2, abs=0.5)
    assert expires <= expired["time"] < expires + 15, "not denied on time"
    assert created["state"] == "running" and requested["step_id"] == "red"
    steps = server.steps("expiry")
    assert steps == {"first": "succeeded", "red": "denied", "last": "skipped"}
    assert server.request_of("expiry", "red")["state"] == "expired"
    assert server.lines("expiry", *LOGS) == {"first": 1, "red": 0, "last": 0}
    # approving it now: too late
    digest = asked["data"]["action_hash"]
    reply = server.post("/v1/approvals/expiry/red/approve", {"action_hash": digest}, who="alice")
    assert reply.status == 409, reply
    assert "expired" in reply.json()["error"]


# --- cancel ---------------------------------------------------------------------------------
def test_cancel_a_halted_run(server: LiveServer) -> None:
    halted(server, "cancelled")
    digest = server.request_of("cancelled", "red")["action_hash"]
    reply = server.post("/v1/runs/cancelled/cancel", who="submitter")
    assert reply.status == 200, reply
    assert reply.json()["state"] == "failed"
    assert server.steps("cancelled") == {"first": "succeeded", "red": "denied", "last": "skipped"}
    assert server.request_of("cancelled", "red")["state"] == "denied"
    assert "run.cancelled" in events_of(server, "cancelled")
    again = server.post("/v1/runs/cancelled/cancel", who="submitter")
    assert again.status == 409 and "has ended" in again.json()["error"]
    late = server.post("/v1/approvals/cancelled/red/approve", {"action_hash": digest}, who="alice")
    assert late.status == 409
    assert server.run("cancelled")["state"] == "failed"
    assert server.lines("cancelled", *LOGS) == {"first": 1, "red": 0, "last": 0}


def test_cancel_a_running_run(server: LiveServer) -> None:
    """Its running step is killed, nothing after it runs, the run ends failed."""
    mark = uuid.uuid4().hex[:12]
    waits = (
        f'    - {{id: waits, agent: a, run: "while [ ! -e /work/{mark} ]; do sleep 0.05; done;'
        ' echo x >> /work/waits.log", needs: [first]}\n'
        '    - {id: after, agent: a, run: "echo x >> /work/after.log", needs: [waits]}\n'
    )
    server.submit(workload(server, "running.yaml", waits), "running")
    server.wait_steps("running", {"waits": "running"})

    def commands() -> list[int]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError):
                if mark.encode() in Path("/proc", pid, "cmdline").read_bytes():
                    found.append(int(pid))
        return found

    wait_until("the step's command to run", commands)
    reply = server.post("/v1/runs/running/cancel", who="submitter")
    assert reply.status == 200, reply
    assert reply.json()["state"] == "failed"
    assert server.steps("running") == {"first": "succeeded", "waits": "failed", "after": "skipped"}
    wait_until("the step's command to be killed", lambda: not commands(), limit=10)
    (server.work("running") / mark).touch()  # had it lived on, it would write now
    events = events_of(server, "running")
    assert events.count("step.cancelled") == 2 and events[-1] == "run.failed"
    assert server.run("running")["state"] == "failed"
    assert server.lines("running", "waits", "after") == {"waits": 0, "after": 0}


def test_409_for_cancelling_a_finished_run(server: LiveServer) -> None:
    path = workload(server, "green.yaml", GREEN)
    server.submit(path, "finished")
    server.wait_run("finished", "succeeded")
    reply = server.post("/v1/runs/finished/cancel", who="submitter")
    assert reply.status == 409, reply
    assert server.run("finished")["state"] == "succeeded"


# --- submitting -----------------------------------------------------------------------------
def test_submit_a_compiled_plan(server: LiveServer) -> None:
    source = Path(server.workspace / workload(server, "plan.yaml", GREEN))
    _, [plan] = compile_paths([str(source)])
    body = {"plan": json.loads(plan.to_json()), "run_id": "by-plan"}
    refused = server.post("/v1/runs", body, who="submitter")  # a plan carries its policies
    assert refused.status == 403, refused
    assert "only an admin token may submit a compiled plan" in refused.json()["error"]
    reply = server.post("/v1/runs", body, who="admin")
    assert reply.status == 201, reply
    assert reply.json()["plan_hash"] == plan.hash
    assert server.wait_run("by-plan", "succeeded")["state"] == "succeeded"
    tampered = json.loads(plan.to_json())
    tampered["steps"][0]["run"] = "echo y >> /work/first.log"
    reply = server.post("/v1/runs", {"plan": tampered, "run_id": "tampered"}, who="admin")
    assert reply.status == 422, reply


def test_409_for_a_run_id_in_use(server: LiveServer) -> None:
    path = workload(server, "reused.yaml", GREEN)
    server.submit(path, "reused")
    reply = server.post("/v1/runs", {"paths": [path], "run_id": "reused"}, who="submitter")
    assert reply.status == 409, reply
    assert "exists already" in reply.json()["error"]
    server.wait_run("reused", "succeeded")
    assert [r["id"] for r in server.get("/v1/runs").json()["runs"]].count("reused") == 1
    assert events_of(server, "reused").count("run.created") == 1


def test_a_run_id_is_made_when_none_is_given(server: LiveServer) -> None:
    path = workload(server, "unnamed.yaml", GREEN)
    reply = server.post("/v1/runs", {"paths": [path]}, who="submitter")
    assert reply.status == 201, reply
    run_id = reply.json()["id"]
    assert run_id.startswith("w-")
    server.wait_run(run_id, "succeeded")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/runs", {"paths": "w.yaml"}, "paths"),
        ("/v1/runs", {"paths": ["w.yaml"], "colour": "red"}, "colour"),
        ("/v1/runs", {"paths": ["../outside.yaml"]}, "paths.0"),
        ("/v1/runs", {"paths": ["/etc/passwd"]}, "paths.0"),
        ("/v1/runs", {"paths": ["green.yaml"], "run_id": "../escape"}, "run_id"),
        ("/v1/runs", {"paths": ["green.yaml"], "plan": {}}, "plan"),
        ("/v1/runs", {"paths": ["green.yaml"], "params": {"x": [1]}}, "params.x.str"),
        ("/v1/approvals/roles/red/approve", {}, "action_hash"),
        ("/v1/approvals/roles/red/approve", {"action_hash": "no spaces"}, "action_hash"),
        ("/v1/approvals/roles/red/deny", {"action_hash": "a", "reason": "r" * 2001}, "reason"),
        ("/v1/approvals/decide", {"decisions": []}, "decisions"),
        (
            "/v1/approvals/decide",
            {
                "decisions": [
                    {"run_id": "r", "step_id": "s", "action_hash": "h", "verdict": "maybe"}
                ]
            },
            "decisions.0.verdict",
        ),
        ("/v1/runs", b"{not json", "(body)"),
    ],
)
def test_422_names_the_bad_field(server: LiveServer, path: str, body: Any, field: str) -> None:
    workload(server, "green.yaml", GREEN)
    reply = server.post(path, body)
    assert reply.status == 422, reply
    assert field in reply.fields, reply.json()


def test_422_for_a_workload_that_does_not_compile(server: LiveServer) -> None:
    (server.workspace / "broken.yaml").write_text("apiVersion: luminaguard.dev/v1\nkind: Nothing\n")
    reply = server.post("/v1/runs", {"paths": ["broken.yaml"], "run_id": "broken"}, who="submitter")
    assert reply.status == 422, reply
    assert str(server.workspace) not in reply.json()["error"]
    assert server.get("/v1/runs/broken").status == 404


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"paths": ["missing.yaml"]}, "paths.0", "no such file"),
        ({"paths": ["n" * 300]}, "paths.0", "cannot be read"),
        ({"paths": ["green.yaml", "green.yaml"]}, "paths", "submit one folder or file"),
        ({"paths": ["nul\u0000.yaml"]}, "paths.0", "not valid"),  # refused as parsed
        ({"paths": ["latin1.yaml"]}, None, "the file is not UTF-8 text"),
        ({"paths": ["green.yaml"], "workload": "nope"}, None, "no workload 'nope'"),
        ({"paths": ["green.yaml"], "params": {"colour": "red"}}, None, "no param 'colour'"),
    ],
)
def test_422_for_paths_that_do_not_compile(
    server: LiveServer, body: dict[str, Any], field: str | None, says: str
) -> None:
    """A workload the server cannot read or compile is the caller's problem, never a 500."""
    workload(server, "green.yaml", GREEN)
    (server.workspace / "latin1.yaml").write_bytes(b"kind: caf\xe9\n")
    reply = server.post("/v1/runs", {**body, "run_id": "not-compiled"}, who="submitter")
    assert reply.status == 422, reply
    assert says in reply.json()["error"]
    assert str(server.workspace) not in reply.text  # the server's folders are not shown
    if field:
        assert reply.fields == [field]
    assert server.get("/v1/runs/not-compiled").status == 404


def test_413_for_a_body_over_the_limit(server: LiveServer) -> None:
    limit = 4 << 20
    # declared too large: refused before it is read
    connection = server.connection()
    try:
        connection.putrequest("POST", "/v1/runs")
        for name, value in server.headers("submitter").items():
            connection.putheader(name, value)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(limit + 1))
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()
    # not declared (chunked): refused once the bytes read pass the limit
    body = b'{"paths": ["' + b"x" * (limit - 10) + b'"]}'
    assert len(body) > limit
    connection = server.connection()
    try:
        headers = {**server.headers("submitter"), "Content-Type": "application/json"}
        connection.request("POST", "/v1/runs", body=iter([body]), headers=headers)
        reply = connection.getresponse()
        assert reply.status == 413
        assert "larger than" in json.loads(reply.read())["error"]
    finally:
        connection.close()
    # just at the limit: read and parsed (then refused for what it says)
    body = b'{"paths": ["' + b"x" * (limit - 16) + b'"]}'
    assert len(body) <= limit
    assert server.post("/v1/runs", body, who="submitter").status == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/runs/no-such-run"),
        ("GET", "/v1/runs/no-such-run/audit"),
        ("POST", "/v1/runs/no-such-run/cancel"),
        ("GET", "/v1/approvals/no-such-run/red"),
        ("GET", "/v1/approvals/roles/no-such-step"),
        ("GET", "/v1/nothing-here"),
    ],
)
def test_404_for_what_does_not_exist(server: LiveServer, method: str, path: str) -> None:
    reply = server.request(method, path, {} if method == "POST" else None)
    assert reply.status == 404, reply
    assert reply.json()["error"]


def test_404_for_deciding_about_an_unknown_run(server: LiveServer) -> None:
    body = {"action_hash": "sha256:" + "1" * 64}
    reply = server.post("/v1/approvals/no-such-run/red/approve", body, who="alice")
    assert reply.status == 404, reply


# --- events and metrics ---------------------------------------------------------------------
def test_the_event_stream_delivers_step_and_approval_events(server: LiveServer) -> None:
    path = workload(server, "events.yaml", HALTS)
    server.submit(path, "events")
    seq = server.audit("events")[0]["seq"]

    def of(kind: str, step: str | None = None) -> Any:
        return lambda e: (
            e["run_id"] == "events"
            and e["event"] == kind
            and (step is None or e["step_id"] == step)
        )

    with server.events(after=seq - 1) as stream:
        created = stream.wait_for("run.created", of("run.created"))
        assert int(created["_id"]) == seq == created["id"]
        stream.wait_for("first succeeded", of("step.succeeded", "first"))
        requested = stream.wait_for("approval.requested", of("approval.requested", "red"))
        stream.wait_for("run halted", of("run.halted"))
        assert server.decide("events", "red").status == 200
        stream.wait_for("approval.approved", of("approval.approved", "red"))
        stream.wait_for("red started", of("step.started", "red"))
        stream.wait_for("last succeeded", of("step.succeeded", "last"))
        stream.wait_for("run succeeded", of("run.succeeded"))
    mine = [e for e in stream.seen if e["run_id"] == "events"]
    ids = [e["id"] for e in stream.seen]
    assert ids == sorted(set(ids)), "events repeated or out of order"
    assert all(e["_kind"] == e["event"] and int(e["_id"]) == e["id"] for e in stream.seen)
    assert {"step.started", "step.succeeded", "approval.requested", "approval.approved"} <= {
        e["event"] for e in mine
    }
    assert requested["state"] == "requested" and created["step_id"] is None
    assert all(
        set(e) == {"id", "time", "event", "run_id", "step_id", "state", "_id", "_kind"}
        for e in mine
    )

    # reconnecting after an event (?after= this time) sends what came after it, first
    with server.events(after=requested["id"], header=False) as again:
        replayed = again.wait_for("the replay's run.succeeded", of("run.succeeded"))
    assert again.seen[0]["id"] > requested["id"]
    assert [e["id"] for e in again.seen] == [
        e["id"] for e in stream.seen if requested["id"] < e["id"] <= replayed["id"]
    ]


def test_422_for_a_bad_last_event_id(server: LiveServer) -> None:
    reply = server.request("GET", "/v1/events", who="viewer", headers={"Last-Event-ID": "x1"})
    assert reply.status == 422


def test_metrics(server: LiveServer) -> None:
    halted(server, "metered")
    before = metrics(server.get("/metrics"))
    assert before['luminaguard_runs{state="halted"}'] >= 1
    assert before["luminaguard_approvals_pending"] >= 1
    assert before["luminaguard_approval_oldest_age_seconds"] > 0
    assert server.decide("metered", "red").status == 200
    server.wait_run("metered", "succeeded")
    reply = server.get("/metrics")
    assert reply.headers["content-type"].startswith("text/plain")
    after = metrics(reply)
    for name in (
        "luminaguard_runs",
        "luminaguard_steps",
        "luminaguard_approvals_pending",
        "luminaguard_approval_oldest_age_seconds",
        "luminaguard_decision_seconds",
        "luminaguard_step_seconds",
        "luminaguard_pool_vms",
    ):
        assert f"# TYPE {name} " in reply.text, name
    assert after['luminaguard_runs{state="succeeded"}'] >= 1
    assert (
        after["luminaguard_decision_seconds_count"]
        >= before.get("luminaguard_decision_seconds_count", 0) + 1
    )
    assert after['luminaguard_step_seconds_count{outcome="succeeded"}'] >= 3
    assert after['luminaguard_steps{state="succeeded"}'] >= 3


def metrics(reply: Reply) -> dict[str, float]:
    assert reply.status == 200, reply
    found = {}
    for line in reply.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def test_the_audit_log_verifies_after_all_this(server: LiveServer, cli: CliRunner) -> None:
    result = cli("audit", "verify", "--state", str(server.state))
    assert result.code == 0, result.out + result.err

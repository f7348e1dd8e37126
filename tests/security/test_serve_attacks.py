"""Attacks on ``luminaguard serve`` and on ``run --server``, found by a review of the server.

Each test performs one attack and says in its docstring what it did before the fix:
a submitter choosing which policy classifies a workload, a folder path reading a YAML
file outside the workspace through a symlink, idle unauthenticated connections taking
every file descriptor of the server, and a hostile server crashing the ``run --server``
client with a traceback.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.ui.remote import parse_event
from tests.conftest import ROOT
from tests.server.live import LiveServer, cli_quietly, serving

pytestmark = pytest.mark.integration

STRICT_POLICY = """\
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
"""
AGENT = """\
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec: {policy: p}
"""
WORKLOAD = """\
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: deploy}
spec:
  steps:
    - {id: publish, agent: a, run: "touch /work/published.flag"}
"""
# another team's policy that happens to have the same name, and lets touch run
LAX_POLICY = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - id: scratch
      match: {program: [touch]}
      risk: green
      reason: team b's agents touch scratch files
"""


@pytest.fixture
def server(sandbox: None, tmp_path: Path) -> Iterator[LiveServer]:
    with serving(tmp_path / "state", tmp_path / "workspace") as live:
        yield live


# --- a submitter picks the policy -----------------------------------------------------------
def test_a_submitter_cannot_pair_a_workload_with_another_folders_policy(
    server: LiveServer,
) -> None:
    """The workspace holds team a's workload, agent and strict policy ``p`` (touch is
    Red) in one folder, and team b's own policy, also named ``p``, that makes touch
    Green, in another. Submitted as ``team-a`` the run halts for alice. A submitter
    submitted ``team-a/workload.yaml``, ``team-a/agent.yaml`` and ``team-b/policy.yaml``
    instead: the catalog took team b's ``p`` for team a's agent, and the Red step ran
    without anyone's approval (``published.flag`` written, run succeeded). Choosing
    which policy classifies the steps is writing policy, which only an admin may do.
    """
    for folder, files in {
        "team-a": {"policy.yaml": STRICT_POLICY, "agent.yaml": AGENT, "workload.yaml": WORKLOAD},
        "team-b": {"policy.yaml": LAX_POLICY},
    }.items():
        (server.workspace / folder).mkdir()
        for name, text in files.items():
            (server.workspace / folder / name).write_text(text)
    server.submit("team-a", "as-written")
    assert server.wait_run("as-written", "halted")["state"] == "halted"

    paths = ["team-a/workload.yaml", "team-a/agent.yaml", "team-b/policy.yaml"]
    reply = server.post("/v1/runs", {"paths": paths, "run_id": "mixed"}, who="submitter")
    if reply.status == 201:
        run = server.wait_run("mixed", "halted", "succeeded", "failed")
        assert not (server.work("mixed") / "published.flag").exists()
        assert run["state"] == "halted", run


# --- paths beyond the workspace --------------------------------------------------------------
def test_a_folder_does_not_read_a_symlinked_yaml_outside_the_workspace(
    server: LiveServer, tmp_path: Path
) -> None:
    """A path naming a link to a file outside the workspace is refused, but a *folder*
    was walked following the links in it: ``sub/x.yaml -> /outside/secret.yaml`` was
    read, and its content came back in the 422 (``metadata.name: 'SECRET-...' is not
    valid here``). Whoever can plant a link in the workspace (an agent that mounts a
    folder of it) had the server read any file its user can, for a submitter to see.
    """
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text(
        "apiVersion: luminaguard.dev/v1\nkind: Policy\n"
        "metadata: {name: SECRET-hunter2-value}\nspec: {rules: []}\n"
    )
    (server.workspace / "sub").mkdir()
    (server.workspace / "sub" / "x.yaml").symlink_to(outside / "secret.yaml")
    direct = server.post("/v1/runs", {"paths": ["sub/x.yaml"]}, who="submitter")
    assert direct.status == 422 and "hunter2" not in direct.text  # as it was: refused
    reply = server.post("/v1/runs", {"paths": ["sub"], "run_id": "linked"}, who="submitter")
    assert reply.status == 422, reply
    assert "hunter2" not in reply.text, reply.text


# --- file descriptors ------------------------------------------------------------------------
def test_idle_unauthenticated_connections_do_not_take_the_server_down(
    server: LiveServer,
) -> None:
    """Connections that send half a request line and then nothing are kept open for
    ever (the HTTP server has no timeout for a request's head), with no token needed.
    With the server's descriptors limited to 128, 200 of them took all: ``accept``
    failed with EMFILE, ``/healthz`` got no answer while they stayed (approvals could
    not be made, steps could not start), and the log grew by over a megabyte a second
    of "Too many open files" tracebacks.
    """
    resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (128, 128))
    idle: list[socket.socket] = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            idle.append(sock)
        time.sleep(1)
        reply = server.request("GET", "/healthz", who=None, timeout=10)
        assert reply.status == 200
    finally:
        for sock in idle:
            sock.close()


# --- a hostile server against run --server ---------------------------------------------------
@pytest.mark.parametrize(
    ("last_id", "data"),
    [
        ("\u00b2", '{"event": "step.started", "run_id": "r", "step_id": "s"}'),  # '²'.isdigit()
        ("1", "[" * 30000),  # RecursionError is not a ValueError
        ("1", '{"event": "step.started", "run_id": "r", "time": 1' + "0" * 400 + "}"),
    ],
    ids=["superscript-id", "deep-json", "huge-int-time"],
)
def test_a_hostile_event_is_dropped_not_a_crash(last_id: str, data: str) -> None:
    """``parse_event`` raised on these (ValueError from ``int('²')``, RecursionError,
    OverflowError from ``float(10**400)``): a server sending one made ``run --server``
    end with "internal error: this is a bug" and a traceback (exit 4)."""
    event = parse_event(last_id, data)
    assert event is None or isinstance(event.id, int)


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A fake server: events end the run at once; the run's JSON is ``self.server.run``."""

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: bytes, kind: str = "application/json", status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/v1/events"):
            ended = (
                b'id: 1\nevent: run.succeeded\ndata: {"event": "run.succeeded", "run_id": "r",'
                b' "step_id": null, "state": "succeeded"}\n\n'
            )
            self._send(b": hi\n\n" + ended, "text/event-stream")
        else:
            self._send(self.server.run)  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(json.dumps({"id": "r", "backend": "sandbox"}).encode(), status=201)


@contextlib.contextmanager
def hostile_server(run: bytes) -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    httpd.run = run  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    "run",
    [
        b"[" * 30000,
        json.dumps({"id": "r", "state": ["succeeded"], "steps": []}).encode(),
        json.dumps({"id": "r", "state": "failed", "steps": [{"state": {}, "error": "x"}]}).encode(),
    ],
    ids=["deep-json", "list-state", "dict-step-state"],
)
def test_a_hostile_run_answer_is_refused_not_a_crash(tmp_path: Path, run: bytes) -> None:
    """``GET /v1/runs/r`` answered with deep JSON (RecursionError), or a run or step
    state that is a list or an object (``in frozenset``: TypeError, unhashable): the
    client crashed with a traceback, exit 4. A server's answer it cannot read must be
    a refusal (exit 1) naming the server, like any other malformed answer."""
    with hostile_server(run) as url:
        code, out = cli_quietly(
            "run", str(ROOT / "examples" / "01-hello"), "--server", url, "--token", "lg_x",
            "--state", str(tmp_path / "state"),
        )  # fmt: skip
    assert "Traceback" not in out and "internal error" not in out, out
    assert code in (1, 2), out

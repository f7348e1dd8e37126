"""A hostile or broken backend or MCP server fails the step it hurts, never the runner.

A ``BackendError`` while a step runs, or an answer from an MCP HTTP server that is not
JSON-RPC, used to escape the run loop: the run ended as an internal error (exit 4) with
the step left ``running`` forever.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from luminaguard.hypervisor import registry
from luminaguard.hypervisor.base import (
    AsyncClosing,
    Availability,
    BackendError,
    ExecResult,
    SandboxProcess,
    SandboxSpec,
)
from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner, Writer

HEAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: echo, match: {kind: run, command: {regex: '^echo '}}, risk: green, reason: test}
    - {id: srv, match: {server: remote}, risk: green, reason: test server}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
%s---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
"""


@dataclass
class _Handle:
    spec: SandboxSpec


class DyingBackend(AsyncClosing):
    """A backend whose VM dies under any command that says ``boom``."""

    name = "dying"
    micro_vm = False

    def availability(self) -> Availability:
        return Availability(True, "test double")

    async def create(self, spec: SandboxSpec) -> _Handle:
        return _Handle(spec)

    async def spawn(
        self, handle: _Handle, argv: list[str], env: dict[str, str] | None = None
    ) -> SandboxProcess:
        raise BackendError("no processes in this backend")

    async def exec(self, handle: _Handle, command: str, timeout: float) -> ExecResult:
        if "boom" in command:
            raise BackendError("the VM died under the step (guest agent gone)")
        return ExecResult(0, "fine\n", "", 0.01)

    async def destroy(self, handle: _Handle) -> None:
        pass


def steps(state: Path) -> dict[str, tuple[str, str | None]]:
    store = RunStore(state)
    try:
        return {k: (v.state, v.error) for k, v in store.steps("r").items()}
    finally:
        store.close()


def test_a_backend_error_during_a_step_fails_that_step_only(
    cli: CliRunner, write: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: the backend raises BackendError while a step runs (a VM dying under it); the
    run ended at once (exit 1, "error: ...") with the step stuck ``running``. Now that step
    fails, its dependents are skipped, the others run, and the run ends normally with exit 2.

    Fixed by c99e617 "runner: a BackendError while a step runs fails that step".
    """
    monkeypatch.setitem(registry.BACKENDS, "dying", DyingBackend)
    body = HEAD % "" + (
        "    - {id: boom, agent: a, run: 'echo boom'}\n"
        "    - {id: after, agent: a, run: 'echo after', needs: [boom]}\n"
        "    - {id: other, agent: a, run: 'echo other'}\n"
    )
    state = tmp_path / "s"
    args = ("run", str(write("w.yaml", body)), "--state", str(state), "--run-id", "r")
    result = cli(*args, "--backend", "dying", "--concurrency", "1")
    assert result.code == 2, result.out + result.err
    assert "internal error" not in result.err
    assert steps(state) == {
        "boom": ("failed", "the VM died under the step (guest agent gone)"),
        "after": ("skipped", None),
        "other": ("succeeded", None),
    }
    assert "boom: failed: the VM died under the step" in result.out


GARBAGE = {
    "html": ("text/html", b"<html><body>502 Bad Gateway (but 200)</body></html>"),
    "bad-json": ("application/json", b'{"jsonrpc": "2.0", "id": 1, "result": '),
    "not-json-rpc": ("application/json", b"[1, 2, 3]"),
    "bad-sse": ("text/event-stream", b"event: message\ndata: <not json>\n\n"),
    # a JSON-RPC answer to each request (its id echoed) whose result fits no MCP result
    "bad-result": ("application/json", b'{"jsonrpc": "2.0", "id": %d, "result": {"tools": 7}}'),
}


@pytest.fixture(params=sorted(GARBAGE))
def garbage_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """An HTTP server answering every POST with 200 and a body that is not JSON-RPC."""
    kind, body = GARBAGE[request.param]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            sent = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            answer = body % sent.get("id", 0) if b"%d" in body else body
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # polled often: shutdown() waits for the next poll (0.5 s by default)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mcp"
    finally:
        server.shutdown()
        server.server_close()


def test_an_mcp_http_answer_that_is_not_json_rpc_fails_the_call_step(
    garbage_server: str, cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: an MCP HTTP server answers 200 with HTML, broken JSON, JSON that is not a
    JSON-RPC message, an SSE event that is not JSON, or a result that fits no MCP result
    (``tools: 7``); the run ended as an internal error
    (exit 4). Now the call step fails with a transport error, its dependent is skipped, and
    the run ends with exit 2.

    Fixed by 8980b52 "mcp_http: an answer that is not JSON-RPC is a transport error on the step".
    """
    agent = f"  mcp_servers:\n    remote: {{url: '{garbage_server}'}}\n"
    body = HEAD % agent + (
        "    - {id: call, agent: a, call: remote.whoami}\n"
        "    - {id: after, agent: a, run: 'echo after', needs: [call]}\n"
    )
    state = tmp_path / "s"
    result = cli("run", str(write("w.yaml", body)), "--state", str(state), "--run-id", "r")
    assert result.code == 2, result.out + result.err
    assert "internal error" not in result.err
    found = steps(state)
    assert found["after"] == ("skipped", None)
    state_of_call, error = found["call"]
    assert state_of_call == "failed"
    assert error is not None and "MCP server 'a/remote'" in error
    assert "not JSON-RPC" in error or "answered outside the protocol" in error

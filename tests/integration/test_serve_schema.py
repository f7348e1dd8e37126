"""Schemathesis against a real ``luminaguard serve`` on loopback, from schemas/openapi.json.

The server is a subprocess over a state folder seeded with two runs (on the fake
backend, so that nothing is ever started): ``held``, halted at its Red step ``ship``
with a pending approval, and ``done``, succeeded. Generated requests name these runs
and steps part of the time (schemathesis dictionaries), and the approval's action hash
stands behind the placeholder ``SEEDED``, so that successful responses are checked too,
not only 404s. Every response must be documented: status code, content type, headers
and body; none may be a 5xx. Generation is derandomized with a fixed seed, and bounded
(``MAX_EXAMPLES`` per operation), so a run takes seconds and finds the same cases.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis

from tests.conftest import ROOT
from tests.scheduler.harness import TOKEN, Harness, compile_steps

DOCUMENT = ROOT / "schemas" / "openapi.json"
MAX_EXAMPLES = 30
SEED = 20240611
#: Stands for the pending approval's action hash in generated bodies (see ``_seeded``).
PLACEHOLDER = "SEEDED"
#: How long the server may take to start on a busy machine, and to drain and exit.
START = 60.0
STOP = 30.0

RED = """\
    - {id: make, agent: a, run: "echo data > /work/data.txt"}
    - {id: ship, agent: a, run: "cp /work/data.txt /work/shipped.txt", needs: [make]}
"""

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "dictionaries": {
            "runs": {"values": ["held", "done"]},
            "steps": {"values": ["ship", "make"]},
            "hashes": {"values": [PLACEHOLDER]},
        },
        "parameters": {
            "path.run_id": {"dictionary": "runs", "probability": 0.5},
            "path.step_id": {"dictionary": "steps", "probability": 0.5},
            "body.action_hash": {"dictionary": "hashes", "probability": 0.5},
            "body.decisions[*].run_id": {"dictionary": "runs", "probability": 0.5},
            "body.decisions[*].step_id": {"dictionary": "steps", "probability": 0.5},
            "body.decisions[*].action_hash": {"dictionary": "hashes", "probability": 0.5},
        },
        "checks": {
            # a body the schema allows may still be refused for what it cannot say: a plan
            # that does not compile, a path outside the workspace, a run id with '..'
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
            },
        },
    }
)
# the event stream never ends: it is read by tests/server/test_app.py and the HTTP tests
schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG).exclude(path="/v1/events")


@dataclass(frozen=True)
class Served:
    """The running server: its URL, an admin token, the seeded approval's action hash."""

    url: str
    token: str
    action_hash: str
    process: subprocess.Popen[bytes]
    log: Path


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["LG_TEST_TOKEN"] = TOKEN  # the seeded plans' secret
    return env


def _seed(state: Path, work: Path) -> str:
    """Two runs on the fake backend: ``held`` halted at ``ship``, ``done`` succeeded."""
    harness = Harness(state)
    harness.clock.now = time.time()  # the server's clock: the request stays pending an hour
    try:
        harness.backend.on("echo data > /work/data.txt")
        plan = compile_steps(work, RED)
        assert harness.start(plan, "held").state == "halted"
        done = compile_steps(
            work, '    - {id: make, agent: a, run: "echo data > /work/data.txt"}\n'
        )
        assert harness.start(done, "done").state == "succeeded"
        [request] = harness.store.approvals("pending")
        return request.action_hash
    finally:
        harness.store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _token(state: Path, env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "luminaguard", "token", "create", "fuzz", "--role", "admin"]
    done = subprocess.run(
        [*command, "--state", str(state)], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    """Whether /readyz answers 200, waiting for it (False if the process ended first)."""
    deadline = time.monotonic() + START
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                return True
        except requests.ConnectionError:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):  # wakes as soon as it ends
            process.wait(0.05)
    return False


def _start(
    state: Path, workspace: Path, log: Path, env: dict[str, str]
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start the server on a free port (another, if someone took it); its URL and process."""
    for _ in range(3):
        port = _free_port()
        command = [sys.executable, "-m", "luminaguard", "serve", "--port", str(port)]
        command += ["--state", str(state), "--workspace", str(workspace), "--grace", "5"]
        with log.open("ab") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        if _ready(url, process):
            return url, process
        process.kill()
        process.wait()
        if "address already in use" not in log.read_text(errors="replace"):
            break
    pytest.fail(f"luminaguard serve did not become ready:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve")
    state, workspace, work = root / "state", root / "workspace", root / "plans"
    workspace.mkdir()
    work.mkdir()
    action_hash = _seed(state, work)
    env = _environment()
    log = root / "serve.log"
    url, process = _start(state, workspace, log, env)
    yield Served(url, _token(state, env), action_hash, process, log)
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(STOP)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the server did not stop on SIGTERM:\n{log.read_text(errors='replace')}")
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert "Traceback" not in text, text


def _seeded(value: Any, action_hash: str) -> Any:
    """``value`` with the placeholder replaced by the real action hash, wherever it is."""
    if value == PLACEHOLDER:
        return action_hash
    if isinstance(value, dict):
        return {k: _seeded(v, action_hash) for k, v in value.items()}
    if isinstance(value, list):
        return [_seeded(v, action_hash) for v in value]
    return value


#: (method, path template, status) of every generated request, in order.
SEEN: list[tuple[str, str, int]] = []


@schema.parametrize()
def test_every_response_is_documented_and_none_is_a_server_error(
    case: schemathesis.Case, served: Served
) -> None:
    if isinstance(case.body, dict | list):
        case.body = _seeded(case.body, served.action_hash)
    headers = {"Authorization": f"Bearer {served.token}"}
    response = case.call_and_validate(base_url=served.url, headers=headers, timeout=30)
    SEEN.append((case.method, case.path, response.status_code))


def test_generated_requests_reached_the_seeded_runs(served: Served) -> None:
    """Not only 404s were checked: responses about the seeded runs were, too."""
    if not SEEN:
        pytest.skip("the schemathesis test did not run (deselected)")
    ok = {(method, path) for method, path, status in SEEN if status < 300}
    assert {
        ("GET", "/v1/runs"),
        ("GET", "/v1/runs/{run_id}"),
        ("GET", "/v1/runs/{run_id}/audit"),
        ("GET", "/v1/approvals/{run_id}/{step_id}"),
        ("POST", "/v1/approvals/decide"),
        ("POST", "/v1/runs/{run_id}/cancel"),
    } <= ok
    headers = {"Authorization": f"Bearer {served.token}"}
    held = requests.get(f"{served.url}/v1/runs/held", headers=headers, timeout=30).json()
    assert held["state"] == "failed"  # cancelled; its request decided or denied by the cancel

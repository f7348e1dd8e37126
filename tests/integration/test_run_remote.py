"""``luminaguard run --server``: compiled here, run by a real ``luminaguard serve`` process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from luminaguard.hypervisor.linux import work_disk
from tests.conftest import ROOT, CliRunner, Writer

HEAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - id: safe
      match: {program: [echo, cat, 'true'], redirects: {path: /work/**}}
      risk: green
      reason: safe
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  limits: {memory_mib: 64, timeout: 20s}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
"""

GREEN = """\
    - {id: one, agent: a, run: "echo one > /work/one.txt"}
    - {id: two, agent: a, run: "cat /work/one.txt", needs: [one]}
    - {id: three, agent: a, run: "echo {{ steps.two.outputs.stdout | trim }}-done", needs: [two]}
"""

RED = """\
    - {id: make, agent: a, run: "echo data > /work/data.txt"}
    - {id: ship, agent: a, run: "cp /work/data.txt /work/shipped.txt", needs: [make]}
"""

FAILING = """\
    - {id: missing, agent: a, run: "cat /work/nothing-here.txt"}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env() -> dict[str, str]:
    """This checkout first on the path of the child processes."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def luminaguard(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "luminaguard", *args]
    return subprocess.run(command, env=child_env(), capture_output=True, text=True, check=True)


@dataclass
class Served:
    url: str
    token: str
    state: Path
    submitter: str

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)


def wait_ready(url: str, process: subprocess.Popen[str], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"luminaguard serve exited {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"luminaguard serve not ready within {within} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A ``luminaguard serve`` child process on a free port, an admin's and a submitter's token.

    ``run --server`` submits a compiled plan, which carries its own policies: an admin's.
    """
    from tests.integration.conftest import sandbox_problem

    if problem := sandbox_problem():
        pytest.skip(problem)
    root = tmp_path_factory.mktemp("served")
    state = root / "state"
    token = luminaguard("token", "create", "tester", "--role", "admin", "--state", str(state))
    submitter = luminaguard("token", "create", "ci", "--role", "submitter", "--state", str(state))
    port = free_port()
    command = [sys.executable, "-m", "luminaguard", "serve", "--state", str(state)]
    command += ["--workspace", str(root), "--port", str(port), "--grace", "2"]
    log = (root / "serve.log").open("w")
    process = subprocess.Popen(command, env=child_env(), stdout=log, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield Served(url, token.stdout.strip(), state, submitter.stdout.strip())
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        if os.getuid() == 0:
            for point in work_disk.mounted_under(root):
                work_disk.detach(point)


def workload(write: Writer, steps: str) -> str:
    return str(write("w.yaml", HEAD + steps))


def test_green_workload_succeeds_through_the_server(
    server: Served, cli: CliRunner, write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMINAGUARD_TOKEN", server.token)  # the token from the environment
    result = cli("run", workload(write, GREEN), "--server", server.url, "--run-id", "green")
    assert result.code == 0, result.err
    assert "run green: succeeded" in result.out
    for step in ("one", "two", "three"):
        assert any(line.split()[1:] == [step, "succeeded"] for line in result.out.splitlines())
    run = server.get("/v1/runs/green")
    assert run["state"] == "succeeded"
    outputs = {step["step_id"]: step["outputs"] for step in run["steps"]}
    assert outputs["three"]["stdout"] == "one-done\n"


def test_red_step_halts_the_run_on_the_server(
    server: Served, cli: CliRunner, write: Writer
) -> None:
    path = workload(write, RED)
    result = cli("run", path, "--server", server.url, "--token", server.token, "--run-id", "red")
    assert result.code == 3, result.err
    assert "run red: halted" in result.out
    assert "ship: awaiting approval: $ cp /work/data.txt /work/shipped.txt" in result.out
    assert any(
        line.split()[1:] == ["ship", "awaiting_approval"] for line in result.out.splitlines()
    )
    assert server.get("/v1/runs/red")["state"] == "halted"
    pending = server.get("/v1/approvals")["approvals"]
    assert [(a["run_id"], a["step_id"]) for a in pending] == [("red", "ship")]


def test_failed_step_exits_2(server: Served, cli: CliRunner, write: Writer) -> None:
    path = workload(write, FAILING)
    result = cli("run", path, "--server", server.url, "--token", server.token, "--run-id", "fails")
    assert result.code == 2, result.err
    assert "missing: failed: exited with code 1" in result.out
    assert any(line.split()[1:] == ["missing", "failed"] for line in result.out.splitlines())
    assert server.get("/v1/runs/fails")["state"] == "failed"


def test_bad_token_exits_1_with_the_servers_message(
    server: Served, cli: CliRunner, write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LUMINAGUARD_TOKEN", raising=False)
    path = workload(write, GREEN)
    result = cli("run", path, "--server", server.url, "--token", "lg_not-a-token", "--run-id", "x")
    assert result.code == 1
    assert "HTTP 401" in result.err and "a valid bearer token is needed" in result.err
    without = cli("run", path, "--server", server.url, "--run-id", "x")
    assert without.code == 1 and "HTTP 401" in without.err
    runs = server.get("/v1/runs")["runs"]
    assert "x" not in [run["id"] for run in runs]


def test_a_submitters_plan_is_refused_with_the_servers_reason(
    server: Served, cli: CliRunner, write: Writer
) -> None:
    path = workload(write, GREEN)
    result = cli("run", path, "--server", server.url, "--token", server.submitter)
    assert result.code == 1
    assert "HTTP 403" in result.err and "only an admin token" in result.err


def test_run_id_in_use_exits_1(server: Served, cli: CliRunner, write: Writer) -> None:
    path = workload(write, GREEN)
    first = cli("run", path, "--server", server.url, "--token", server.token, "--run-id", "twice")
    assert first.code == 0, first.err
    again = cli("run", path, "--server", server.url, "--token", server.token, "--run-id", "twice")
    assert again.code == 1
    assert "HTTP 409" in again.err and "exists already" in again.err


def test_compile_error_exits_1_without_contacting_the_server(cli: CliRunner, write: Writer) -> None:
    broken = write("w.yaml", HEAD + "    - {id: one, agent: nobody, run: 'true'}\n")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        result = cli("run", str(broken), "--server", url, "--token", "t")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert result.code == 1
    assert f"{broken}:23:24: error: undefined Agent" in result.err and "nobody" in result.err


def test_unreachable_server_exits_1(cli: CliRunner, write: Writer) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("run", workload(write, GREEN), "--server", url, "--token", "t")
    assert result.code == 1
    assert f"cannot reach the server at {url}" in result.err

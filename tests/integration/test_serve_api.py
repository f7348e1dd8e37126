"""The HTTP API of a real ``luminaguard serve``: every endpoint, its refusals, its races.

One server (module-scoped) serves every test here; each test writes its own workload
into the server's workspace and uses its own run ids. Steps run in real sandboxes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.server.live import LiveServer

HEAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  approval: {approvers: [alice], timeout: %(timeout)s}
  rules:
    - id: logs
      match: {program: [sleep, echo], redirects: {path: /work/*.log}}
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


# --- submitting ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"paths": ["missing.yaml"]}, "paths.0", "no such file"),
        ({"paths": ["green.yaml", "n" * 300]}, "paths.1", "cannot be read"),
        ({"paths": ["nul\u0000.yaml"]}, "paths.0", "cannot be read"),
        ({"paths": ["latin1.yaml"]}, None, "cannot be read"),
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

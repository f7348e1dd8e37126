"""Late attacks on the scheduler's trust boundary: runs.db edited beside a running server.

Each test performs one attack and says in its docstring what it did.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.live import LiveServer, serving

pytestmark = pytest.mark.integration

FILES = {
    "policy.yaml": """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  approval: {approvers: [alice], timeout: 1h}
  rules:
    - id: ok
      match: {program: ["true"]}
      risk: green
      reason: harmless
""",
    "agent.yaml": """\
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec: {policy: p}
""",
    "workload.yaml": """\
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: ship, agent: a, run: "echo shipped >> /work/ship.log"}
    - {id: later, agent: a, run: "echo later >> /work/later.log", needs: [ship]}
""",
}
OTHER = """\
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: o}
spec:
  steps:
    - {id: noop, agent: a, run: "true"}
"""


@pytest.fixture
def server(sandbox: None, tmp_path: Path) -> Iterator[LiveServer]:
    with serving(tmp_path / "state", tmp_path / "workspace") as live:
        yield live


def _edit(state: Path, run_id: str, step_id: str) -> None:
    """Without the audit key: put the step back to pending in runs.db, and rewrite its
    ``step.succeeded`` record (already verified by the server) to say so (its hash is
    left as it was: nobody without the key can recompute it)."""
    db = sqlite3.connect(state / "runs.db", isolation_level=None)
    try:
        seq = db.execute(
            "SELECT MAX(seq) FROM audit WHERE run_id = ? AND step_id = ? AND event = ?",
            (run_id, step_id, "step.succeeded"),
        ).fetchone()[0]
        assert seq is not None
        db.execute(
            "UPDATE audit SET data = ? WHERE seq = ?", (json.dumps({"state": "pending"}), seq)
        )
        db.execute(
            "UPDATE steps SET state = 'pending', outputs = NULL WHERE run_id = ? AND step_id = ?",
            (run_id, step_id),
        )
    finally:
        db.close()


def test_an_edit_in_the_verified_part_of_the_log_does_not_replay_an_approved_step(
    server: LiveServer,
) -> None:
    """The server checks the audit log whole at start, then only from the last record it
    verified (``AuditLog.incremental``). ``check_steps`` believes a step's latest audit
    record without checking it is authentic (it relies on the log having verified). So a
    second process writing runs.db (no audit key) edited the already verified
    ``step.succeeded`` record of Red step ``ship`` into a move back to pending, and the
    step's row to pending. When ``later`` was approved, the server drove the run, the
    stored approval of ``ship`` (authentic, for the same action hash) held again, and the
    Red action ran a second time: one approval, two executions. A fresh process
    (``luminaguard resume``, ``audit verify``) refuses the same state.
    """
    folder = server.workspace / "team"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text)
    server.submit("team", "r")
    server.wait_steps("r", {"ship": "awaiting_approval"})
    assert server.decide("r", "ship").status == 200
    server.wait_steps("r", {"ship": "succeeded", "later": "awaiting_approval"})
    assert server.lines("r", "ship")["ship"] == 1
    # another run driven by the server: its verification covers all of run r's records
    (server.workspace / "other").mkdir()
    for name in ("policy.yaml", "agent.yaml"):
        (server.workspace / "other" / name).write_text(FILES[name])
    (server.workspace / "other" / "workload.yaml").write_text(OTHER)
    server.submit("other", "o")
    server.wait_run("o", "succeeded", "failed", "halted")

    _edit(server.state, "r", "ship")
    server.decide("r", "later")
    server.wait_run("r", "succeeded", "failed", "halted", "denied", "cancelled")
    assert server.lines("r", "ship")["ship"] == 1, "the approved Red step ran twice"

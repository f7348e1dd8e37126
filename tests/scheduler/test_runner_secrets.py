"""Secrets on the fake backend: resolved into the sandbox only, never into the record."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from luminaguard.hypervisor.fake import Outcome
from tests.scheduler.harness import TOKEN, Harness, compile_steps

LEAK = "echo leak"  # the fake sandbox answers with the token, as a hostile one could
STEP = f'    - {{id: leak, agent: a, run: "{LEAK}"}}\n'


def test_a_missing_secret_fails_the_step_before_any_sandbox(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "state", environ={})
    harness.backend.on(LEAK)
    assert harness.start(compile_steps(tmp_path, STEP)).state == "failed"
    error = harness.store.steps("r")["leak"].error or ""
    assert "secret 'LG_TEST_TOKEN' for env TOKEN is not set" in error
    assert harness.backend.calls == []  # no sandbox was made without its secret
    harness.store.close()


def test_secrets_reach_the_sandbox_and_never_the_audit_log(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "state")
    harness.backend.on(LEAK, Outcome(stdout=f"token={TOKEN}\n"))  # a sandbox that prints it
    assert harness.start(compile_steps(tmp_path, STEP)).state == "succeeded"
    [created] = [call for call in harness.backend.calls if call.method == "create"]
    assert created.spec is not None and created.spec.env["TOKEN"] == TOKEN
    assert harness.store.steps("r")["leak"].outputs["stdout"] == "token=***\n"
    dump = "\n".join(json.dumps(record.data) for record in harness.store.audit.records())
    assert "token=***" in dump and TOKEN not in dump
    harness.store.close()
    with sqlite3.connect(tmp_path / "state" / "runs.db") as db:
        for table in ("audit", "steps", "runs", "approvals"):
            assert TOKEN not in "\n".join(str(row) for row in db.execute(f"SELECT * FROM {table}"))

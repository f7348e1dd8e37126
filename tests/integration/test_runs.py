"""Runs on the real sandbox: Green completes, Red halts, approvals decide, limits fail cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

from luminaguard.compiler import compile_paths
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.store import RunStore
from tests.conftest import ROOT, CliRunner, Writer

pytestmark = pytest.mark.usefixtures("sandbox")

HEAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  approval: {timeout: %s}
  rules:
    - id: safe
      match: {program: [echo, cat, 'true', sleep, python3], redirects: {path: /work/**}}
      risk: green
      reason: safe
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  env: {TOKEN: {from_env: LG_TEST_TOKEN}}
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
    - {id: after, agent: a, run: "cat /work/shipped.txt", needs: [ship]}
"""


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LG_TEST_TOKEN", "tok-9f8e7d6c5b4a")


def workload(write: Writer, steps: str, timeout: str = "1h") -> str:
    return str(write("w.yaml", HEAD % timeout + steps))


def run(cli: CliRunner, path: str, state: Path, *extra: str) -> int:
    return cli("run", path, "--state", str(state), "--run-id", "r", *extra).code


def steps(state: Path) -> dict[str, tuple[str, int]]:
    store = RunStore(state)
    try:
        return {k: (v.state, v.attempts) for k, v in store.steps("r").items()}
    finally:
        store.close()


def test_green_workload_completes_with_outputs_flowing(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    result = cli("run", workload(write, GREEN), "--state", str(state), "--run-id", "r")
    assert result.code == 0, result.out + result.err
    assert "run r: succeeded" in result.out
    store = RunStore(state)
    assert store.steps("r")["three"].outputs["stdout"] == "one-done\n"
    assert cli("audit", "verify", "--state", str(state)).code == 0


def test_red_step_halts_then_approve_and_resume_completes(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert run(cli, workload(write, RED), state) == 3
    assert steps(state) == {
        "make": ("succeeded", 1),
        "ship": ("awaiting_approval", 0),
        "after": ("pending", 0),
    }
    listing = cli("approvals", "--state", str(state))
    assert "r ship  [pending]" in listing.out
    assert "cp /work/data.txt /work/shipped.txt" in listing.out and "p/(default)" in listing.out
    assert cli("resume", "r", "--state", str(state)).code == 3  # still waiting: nothing happens
    approved = cli("approve", "r", "ship", "--state", str(state), "--as", "alice", "--reason", "ok")
    assert approved.code == 0 and "approved by alice" in approved.out
    assert cli("resume", "r", "--state", str(state)).code == 0
    assert steps(state) == {
        "make": ("succeeded", 1),
        "ship": ("succeeded", 1),
        "after": ("succeeded", 1),
    }
    store = RunStore(state)
    decided = store.approvals("approved")[0]
    assert (decided.approver, decided.reason) == ("alice", "ok")
    assert cli("approvals", "--state", str(state)).out == "no approval requests waiting\n"


def test_deny_fails_the_run(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert run(cli, workload(write, RED), state) == 3
    assert cli("deny", "r", "ship", "--state", str(state), "--reason", "no").code == 0
    result = cli("resume", "r", "--state", str(state))
    assert result.code == 2
    assert steps(state) == {
        "make": ("succeeded", 1),
        "ship": ("denied", 0),
        "after": ("skipped", 0),
    }
    assert not (state / "runs" / "r" / "agents" / "a" / "work" / "shipped.txt").exists()


def test_expired_approval_denies(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert run(cli, workload(write, RED, timeout="1s"), state) == 3
    time.sleep(1.2)
    assert cli("approve", "r", "ship", "--state", str(state)).code == 1
    assert cli("resume", "r", "--state", str(state)).code == 2
    assert steps(state)["ship"] == ("denied", 0)
    assert [a.state for a in RunStore(state).approvals()] == ["expired"]


def test_expiry_without_any_decision_denies_on_resume(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert run(cli, workload(write, RED, timeout="1s"), state) == 3
    time.sleep(1.2)
    assert cli("resume", "r", "--state", str(state)).code == 2
    assert "approval expired" in (RunStore(state).steps("r")["ship"].error or "")


def test_changed_arguments_invalidate_an_approval(write: Writer, tmp_path: Path) -> None:
    steps_yaml = """\
    - {id: stamp, agent: a, run: "echo first", idempotent: true}
    - id: ship
      agent: a
      run: "cp /work/x /work/{{ steps.stamp.outputs.stdout | trim }}"
      needs: [stamp]
"""
    _, plans = compile_paths([workload(write, steps_yaml)])
    store = RunStore(tmp_path / "state")
    runner = Runner(store, SandboxBackend())
    assert asyncio.run(runner.start(plans[0], "r")).state == "halted"
    [request] = store.approvals("pending")
    assert request.card["arguments"] == {"command": "cp /work/x /work/'first'"}
    store.decide_approval(request, "approved", "alice", None)
    # the upstream output differs now: the approved action is not this one. No move of
    # the state table gets here (a succeeded step is final), so write what a second
    # finish of stamp would have written, in runs.db and (keyed) in the audit log
    outputs = {"stdout": "second\n", "exit_code": 0}
    text = json.dumps(outputs, sort_keys=True)
    store.db.execute("UPDATE steps SET outputs = ? WHERE step_id = 'stamp'", (text,))
    store.audit_event("r", "stamp", "step.succeeded", {"attempt": 1, "outputs": outputs})
    result = asyncio.run(runner.resume("r"))
    assert result.state == "halted"
    assert store.steps("r")["ship"].attempts == 0  # never executed
    [new] = store.approvals("pending")
    assert new.card["arguments"] == {"command": "cp /work/x /work/'second'"}
    assert new.action_hash != request.action_hash


def test_timeout_fails_the_step_and_the_run(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    path = workload(write, '    - {id: slow, agent: a, run: "sleep 30", timeout: 1s}\n')
    result = cli("run", path, "--state", str(tmp_path / "s"), "--run-id", "r")
    assert result.code == 2
    # the message gives the time measured until the kill: the 1 s limit, plus whatever a
    # loaded machine adds before the kill lands (never less than the limit)
    found = re.search(
        r"slow: failed: timed out after (\d+\.\d)s; the sandbox was killed", result.out
    )
    assert found is not None, result.out
    assert 1.0 <= float(found.group(1)) < 30


def test_memory_limit_fails_the_step_and_the_run(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    hog = "python3 -c 'x = bytearray(300 * 1024 * 1024)'"
    result = cli("run", workload(write, f'    - {{id: hog, agent: a, run: "{hog}"}}\n'),
                 "--state", str(tmp_path / "s"), "--run-id", "r")  # fmt: skip
    assert result.code == 2
    assert "hog: failed:" in result.out


def test_failed_step_skips_its_dependents(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    body = "    - {id: bad, agent: a, run: \"python3 -c 'raise SystemExit(4)'\"}\n"
    body += '    - {id: next, agent: a, run: "true ", needs: [bad]}\n'
    state = tmp_path / "s"
    assert run(cli, workload(write, body), state) == 2
    assert steps(state) == {"bad": ("failed", 1), "next": ("skipped", 0)}


def test_idempotent_step_is_retried(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    script = (
        "import os,sys; p='/work/n'; n=len(open(p).read()) if os.path.exists(p) else 0; "
        "open(p,'a').write('x'); sys.exit(0 if n >= 2 else 1)"
    )
    flaky = f'python3 -c \\"{script}\\"'
    body = f'    - {{id: flaky, agent: a, run: "{flaky}", idempotent: true, retries: 3}}\n'
    state = tmp_path / "s"
    assert run(cli, workload(write, body), state) == 0
    assert steps(state)["flaky"] == ("succeeded", 3)


def test_when_false_skips(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    body = '    - {id: one, agent: a, run: "true "}\n'
    body += '    - {id: two, agent: a, run: "true ", needs: [one],\n'
    body += '       when: "steps.one.outputs.exit_code != 0"}\n'
    state = tmp_path / "s"
    assert run(cli, workload(write, body), state) == 0
    assert steps(state)["two"] == ("skipped", 0)


def test_secrets_never_reach_the_audit_log(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    body = "    - id: leak\n      agent: a\n"
    body += '      run: python3 -c \'import os; print("token=" + os.environ["TOKEN"])\'\n'
    state = tmp_path / "s"
    assert run(cli, workload(write, body), state) == 0
    store = RunStore(state)
    assert store.steps("r")["leak"].outputs["stdout"] == "token=***\n"
    dump = "\n".join(json.dumps(r.data) for r in store.audit.records())
    with contextlib.closing(sqlite3.connect(state / "runs.db")) as db:
        raw = "\n".join(str(row) for row in db.execute("SELECT * FROM audit"))
    assert "tok-9f8e7d6c5b4a" not in dump and "tok-9f8e7d6c5b4a" not in raw
    assert "token=***" in dump


def test_missing_secret_fails_the_step(
    cli: CliRunner, write: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LG_TEST_TOKEN")
    state = tmp_path / "s"
    assert run(cli, workload(write, '    - {id: one, agent: a, run: "true "}\n'), state) == 2
    assert "secret 'LG_TEST_TOKEN' for env TOKEN is not set" in (
        RunStore(state).steps("r")["one"].error or ""
    )


def test_status_and_usage_errors(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    state = tmp_path / "s"
    assert run(cli, workload(write, RED), state) == 3
    listing = cli("status", "--state", str(state))
    assert "halted" in listing.out
    detail = cli("status", "r", "--state", str(state))
    assert "awaiting_approval" in detail.out
    assert cli("approve", "r", "make", "--state", str(state)).code == 1  # not waiting
    assert cli("approve", "r", "nope", "--state", str(state)).code == 1
    assert cli("resume", "zz", "--state", str(state)).code == 1
    assert run(cli, workload(write, RED), state) == 1  # the run id exists


def test_example_workload_runs_end_to_end(cli: CliRunner, tmp_path: Path) -> None:
    state = str(tmp_path / "s")
    assert cli("run", "examples/04-sandbox-report", "--state", state, "--run-id", "demo").code == 3
    assert cli("approve", "demo", "publish", "--state", state).code == 0
    assert cli("resume", "demo", "--state", state).code == 0
    report = Path(
        state, "runs", "demo", "agents", "reporter", "work", "published", "report.md"
    ).read_text()
    assert "files: 4" in report and "- src/app.py" in report
    assert cli("audit", "verify", "--state", state).code == 0
    assert (ROOT / "examples" / "04-sandbox-report" / "repo" / "README.md").exists()

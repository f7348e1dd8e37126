"""``luminaguard retry``: a failed step, and the steps it skipped, run again on resume.

Each test failed before ``retry`` existed: a transient failure failed the run for good.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.scheduler.states import StateError, StepState
from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner, Writer
from tests.integration.conftest import sandbox  # noqa: F401 (the fixture)
from tests.security.halted_run import halt, sql, work, workload

pytestmark = pytest.mark.usefixtures("sandbox")

FLAKY = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - id: safe
      match: {program: [test, touch, echo, exit], redirects: {path: /work/**}}
      risk: green
      reason: safe
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
    - {id: flaky, agent: a, run: "test -f /work/ok || { touch /work/ok; exit 1; }"}
    - {id: after, agent: a, run: "echo after > /work/after.txt", needs: [flaky]}
    - {id: last, agent: a, run: "echo last > /work/last.txt", needs: [after]}
    - {id: alone, agent: a, run: "echo alone > /work/alone.txt"}
"""


def failed_once(cli: CliRunner, write: Writer, state: str) -> None:
    result = cli("run", str(write("w.yaml", FLAKY)), "--state", state, "--run-id", "r")
    assert result.code == 2, result.out + result.err
    assert states(state) == {
        "flaky": "failed", "after": "skipped", "last": "skipped", "alone": "succeeded"
    }  # fmt: skip


def states(state: str) -> dict[str, str]:
    store = RunStore(Path(state))
    try:
        return {k: str(v.state) for k, v in store.steps("r").items()}
    finally:
        store.close()


def test_a_step_failed_once_is_retried_and_the_run_completes(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    state = str(tmp_path) + "/state"
    failed_once(cli, write, state)
    result = cli("retry", "r", "flaky", "--state", state, "--as", "bob", "--reason", "flaky")
    assert result.code == 0, result.err
    assert "flaky: retried by bob" in result.out
    assert "after, last" in result.out
    assert "luminaguard resume r" in result.out
    assert cli("resume", "r", "--state", state).code == 0
    assert set(states(state).values()) == {"succeeded"}
    assert (work(Path(state)) / "last.txt").read_text() == "last\n"
    store = RunStore(Path(state))
    try:
        [record] = store.audit.records("r", "flaky", "step.retried")
        assert (record.data["by"], record.data["reason"]) == ("bob", "flaky")
        assert [r.step_id for r in store.audit.records("r", event="step.reopened")] == [
            "after", "last"
        ]  # fmt: skip
    finally:
        store.close()


def test_retry_failed_reopens_every_failed_step(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    state = str(tmp_path) + "/state"
    failed_once(cli, write, state)
    assert cli("retry", "r", "--state", state).code == 1  # neither STEP nor --failed
    assert cli("retry", "r", "--failed", "--state", state).code == 0
    assert cli("resume", "r", "--state", state).code == 0
    assert cli("retry", "r", "--failed", "--state", state).code == 1  # none failed now
    assert cli("retry", "r", "alone", "--state", state).code == 1  # succeeded: not retried


def test_a_denied_step_is_not_retried(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    path = Path(str(tmp_path)) / "state"
    halt(cli, workload(write), path)
    assert cli("deny", "r", "ship", "--state", str(path), "--as", "alice").code == 0
    assert cli("resume", "r", "--state", str(path)).code == 2
    result = cli("retry", "r", "ship", "--state", str(path), "--as", "alice")
    assert result.code == 1
    assert "denied" in result.err and "not retried" in result.err
    assert states(str(path))["ship"] == "denied"


def test_a_step_reopened_by_editing_runs_db_is_refused(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    state = str(tmp_path) + "/state"
    failed_once(cli, write, state)
    path = Path(state)
    sql(path, "UPDATE steps SET state = 'pending' WHERE step_id IN ('flaky', 'after', 'last')")
    result = cli("resume", "r", "--state", state)
    assert result.code != 0
    assert "runs.db was edited" in result.err
    assert not (work(path) / "after.txt").exists()


def test_a_runner_never_moves_a_failed_step_to_pending_by_itself(tmp_path: Path) -> None:
    assert not StepState.FAILED.can_move_to(StepState.PENDING)
    assert not StepState.SKIPPED.can_move_to(StepState.PENDING)
    assert StepState.FAILED.can_reopen_to(StepState.PENDING)
    assert not StepState.DENIED.can_reopen_to(StepState.PENDING)
    assert StateError

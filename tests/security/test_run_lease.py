"""Issue #10, section 6: one driver per run (``RunLease``: flock plus fencing token)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner, Writer
from tests.integration.conftest import sandbox  # noqa: F401 (the fixture)
from tests.security.halted_run import halt, shipped, start, work, workload

pytestmark = pytest.mark.usefixtures("sandbox")

# the Red step takes effect, then waits until the test lets it end
BLOCKING = "echo shipped >> /work/ship.log; while [ ! -e /work/go ]; do sleep 0.05; done"


def _wait(condition: object, what: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _step_state(state: Path, step: str) -> str:
    db = sqlite3.connect(state / "runs.db")
    try:
        row = db.execute("SELECT state FROM steps WHERE run_id = 'r' AND step_id = ?", (step,))
        return str(row.fetchone()[0])
    finally:
        db.close()


def _stop(*processes: subprocess.Popen[str]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_two_concurrent_resumes_run_the_approved_step_once(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: two `resume` of one approved run at once both executed the Red step.

    Fixed by b39c386 ("one driver per run: an flock lease per run and a fencing token
    on step starts; ..."): the second refuses with "run r is being driven by PID P since
    T", exit 1.
    """
    state = tmp_path / "state"
    halt(cli, workload(write, ship=BLOCKING), state)
    assert cli("approve", "r", "ship", "--state", str(state), "--as", "alice").code == 0
    first, second = start(state, "resume", "r"), start(state, "resume", "r")
    try:
        # either one of them gives up at once, or (the bug) both run the step
        _wait(lambda: first.poll() is not None or second.poll() is not None or shipped(state) > 1,
              "a resume ended or the step ran twice")  # fmt: skip
        (work(state) / "go").touch()
        outs = {p.pid: p.communicate(timeout=60) for p in (first, second)}
    finally:
        _stop(first, second)
    assert shipped(state) == 1
    codes = {p.pid: p.returncode for p in (first, second)}
    assert sorted(codes.values()) == [0, 1], (codes, outs)
    winner = next(pid for pid, code in codes.items() if code == 0)
    loser = next(pid for pid, code in codes.items() if code == 1)
    assert f"run r is being driven by PID {winner} since " in outs[loser][1]
    assert cli("audit", "verify", "--state", str(state)).code == 0


def test_a_live_driver_keeps_the_run_and_a_killed_one_frees_it(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: `resume` while another process drives the run took over its running step.

    Before the fix the second `resume` marked the running Red step unknown (and could run
    it again once approved). Now it exits 1 naming the driver; after `kill -9` of the
    driver the kernel frees the lease and `resume` takes over with a newer fencing token.
    Fixed by b39c386 ("one driver per run: an flock lease per run and a fencing token on
    step starts; ...").
    """
    state = tmp_path / "state"
    halt(cli, workload(write, approval=", approvers: [alice]", ship=BLOCKING), state)
    assert cli("approve", "r", "ship", "--state", str(state), "--as", "alice").code == 0
    driver = start(state, "resume", "r")
    try:
        _wait(lambda: shipped(state) == 1, "the driver started the Red step")
        refused = cli("resume", "r", "--state", str(state))
        assert refused.code == 1
        assert f"run r is being driven by PID {driver.pid} since " in refused.err
        assert _step_state(state, "ship") == "running"  # untouched by the refused resume
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        _stop(driver)
    taken = cli("resume", "r", "--state", str(state))
    assert taken.code == 3, taken.out + taken.err  # the step may have taken effect: unknown
    assert "being driven" not in taken.err
    store = RunStore(state)
    [started] = store.audit.records("r", "ship", "step.started")
    holder = store.db.execute("SELECT token, pid FROM leases WHERE run_id = 'r'").fetchone()
    assert holder[0] > started.data["lease"] >= 1
    assert shipped(state) == 1
    # only a listed approver decides about the unknown step too (3bd4f68)
    for verb in ("approve", "mark-done", "deny"):
        refused = cli(verb, "r", "ship", "--state", str(state), "--as", "mallory")
        assert refused.code == 1 and "not among the approvers" in refused.err, verb
    assert store.steps("r")["ship"].state == "unknown"


def test_a_stale_fencing_token_cannot_start_a_step(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: a process whose lease was taken over records a step start.

    Fixed by b39c386 ("one driver per run: an flock lease per run and a fencing token
    on step starts; ..."): the store checks the token inside the write transaction.
    """
    from luminaguard.scheduler.lease import LeaseHeld, LeaseLost
    from luminaguard.scheduler.states import StepState

    state = tmp_path / "state"
    halt(cli, workload(write), state)
    store = RunStore(state)
    old = store.lease("r")
    old.release()
    with store.lease("r") as current:
        store.set_step("r", "ship", StepState.PENDING, "step.resumed", {})  # as resume does
        with pytest.raises(LeaseLost, match="lease token 2 is stale"):
            store.begin_attempt("r", "ship", "sha256:x", {}, token=old.token)
        assert store.steps("r")["ship"].attempts == 0
        assert store.audit.records("r", "ship", "step.started") == []
        with pytest.raises(LeaseHeld, match=f"run r is being driven by PID {os.getpid()}"):
            RunStore(state).lease("r")
        assert store.begin_attempt("r", "ship", "sha256:x", {}, token=current.token) == 1

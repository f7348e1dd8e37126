"""SIGKILL ``luminaguard serve`` mid-run, start it again on the same state folder.

The runs go on by themselves: finished steps are not run again (each step appends a
line to a file of the agent's /work, counted at the end), an idempotent step that was
running runs again, a non-idempotent one waits as ``unknown`` until an operator
approves running it again, and the audit log verifies.

The green steps wait for a file (``go.MARK``) the test creates, so that they are
running when the server is killed; the Red step waits for ``red.MARK``. MARK is unique
to the test, so that only this test's sandboxes are looked for among the processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from pathlib import Path

import pytest

from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner
from tests.integration.test_crash import _described
from tests.server.live import PATIENCE, LiveServer, wait_until

pytestmark = pytest.mark.slow

WORKLOAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  approval: {approvers: [alice]}
  rules:
    - id: logs
      match: {program: [sleep, echo, '['], redirects: {path: /work/*.log}}
      risk: green
      reason: logs and waiting
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
    - id: slow
      agent: a
      run: "while [ ! -e /work/go.MARK ]; do sleep 0.05; done; echo x >> /work/slow.log"
      needs: [first]
    - id: again
      agent: a
      run: "while [ ! -e /work/go.MARK ]; do sleep 0.05; done; echo x >> /work/again.log"
      needs: [first]
      idempotent: true
    - id: red
      agent: a
      run: >-
        touch /work/red.flag; while [ ! -e /work/red.MARK ]; do sleep 0.05; done;
        echo x >> /work/red.log
      needs: [slow, again]
    - {id: last, agent: a, run: "echo x >> /work/last.log", needs: [red]}
"""
LOGS = ("first", "slow", "again", "red", "last")


class Crashing:
    """One test's server, its run ``r`` and the marker of its commands."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.mark = uuid.uuid4().hex[:12]
        (server.workspace / "w.yaml").write_text(WORKLOAD.replace("MARK", self.mark))

    def submit(self) -> None:
        self.server.submit("w.yaml", "r")

    def release(self, what: str) -> None:
        """Let the steps waiting for ``what`` (go: the green ones, red: the Red one) end.

        Call once ``first`` succeeded: /work exists then.
        """
        (self.server.work("r") / f"{what}.{self.mark}").touch()

    def sandboxes(self, pid: int, *, zygote: bool = True) -> list[int]:
        """The processes of the server ``pid``'s sandboxes: its zygote, this test's commands."""
        found = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                args = Path("/proc", entry, "cmdline").read_bytes().split(b"\0")[:-1]
            except OSError:
                continue
            ours = zygote and b"--zygote" in args and args[-1] == str(pid).encode()
            if ours or any(self.mark.encode() in arg for arg in args):
                found.append(int(entry))
        return found

    def crash(self, *, steps_running: bool) -> None:
        """SIGKILL the server (once its steps' commands run); no sandbox outlives it."""
        pid = self.server.pid
        if steps_running:  # the journal entry comes before the sandbox starts
            wait_until("the commands to run", lambda: self.sandboxes(pid, zygote=False))
        self.server.kill()
        try:
            wait_until("the sandboxes to end", lambda: not self.sandboxes(pid), limit=10)
        except AssertionError:
            survivors = {p: _described(p) for p in self.sandboxes(pid)}
            raise AssertionError(f"sandbox processes outlived the server: {survivors}") from None

    def attempts(self) -> dict[str, int]:
        return {s["step_id"]: s["attempts"] for s in self.server.run("r")["steps"]}

    def finished(self, cli: CliRunner) -> None:
        """The run succeeded with each step's effect once, and the audit log verifies."""
        done = self.server.wait_run("r", "succeeded", "failed")
        assert done["state"] == "succeeded", done
        assert self.server.lines("r", *LOGS) == dict.fromkeys(LOGS, 1)
        assert self.attempts()["first"] == 1
        result = cli("audit", "verify", "--state", str(self.server.state))
        assert result.code == 0, result.out + result.err

    def operator_reruns(self, cli: CliRunner, step: str, who: str = "operator") -> None:
        """Approve running the unknown step again, as an operator would, with the CLI."""
        state = str(self.server.state)
        result = cli("approve", "r", step, "--state", state, "--as", who)
        assert result.code == 0, result.out + result.err
        assert "will run again" in result.out


@pytest.fixture
def crashing(live_server: LiveServer) -> Crashing:
    return Crashing(live_server)


def test_killed_while_green_steps_run(crashing: Crashing, cli: CliRunner) -> None:
    server = crashing.server
    crashing.submit()
    server.wait_steps("r", {"slow": "running", "again": "running"})
    crashing.crash(steps_running=True)
    crashing.release("go")
    crashing.release("red")

    server.start()
    # nobody asks: the server resumes the run; the idempotent step runs again by itself
    server.wait_steps("r", {"slow": "unknown", "again": "succeeded"})
    assert server.wait_run("r", "halted")["state"] == "halted"
    assert crashing.attempts() == {"first": 1, "slow": 1, "again": 2, "red": 0, "last": 0}
    events = [r["event"] for r in server.audit("r")]
    assert events.count("step.unknown") == 1 and events.count("step.recovered") == 1

    crashing.operator_reruns(cli, "slow")  # the server sees the CLI's decision
    server.wait_steps("r", {"slow": "succeeded", "red": "awaiting_approval"})
    assert server.decide("r", "red").status == 200
    crashing.finished(cli)
    assert crashing.attempts() == {"first": 1, "slow": 2, "again": 2, "red": 1, "last": 1}


def test_killed_while_halted_then_approved_after_the_restart(
    crashing: Crashing, cli: CliRunner
) -> None:
    server = crashing.server
    crashing.submit()
    server.wait_steps("r", {"first": "succeeded"})
    crashing.release("go")
    crashing.release("red")
    server.wait_run("r", "halted")
    crashing.crash(steps_running=False)

    server.start()
    assert server.run("r")["state"] == "halted"
    assert server.request_of("r", "red")["state"] == "pending"
    assert server.decide("r", "red").status == 200
    crashing.finished(cli)
    assert crashing.attempts() == dict.fromkeys(LOGS, 1)


def test_approved_while_the_server_was_down(crashing: Crashing, cli: CliRunner) -> None:
    """The approval is recorded, the server dies before it acts on it: it does on restart.

    (As when the server is killed right after an approval is recorded through the API,
    before the run is driven again.)
    """
    server = crashing.server
    crashing.submit()
    server.wait_steps("r", {"first": "succeeded"})
    crashing.release("go")
    crashing.release("red")
    server.wait_run("r", "halted")
    crashing.crash(steps_running=False)
    result = cli("approve", "r", "red", "--state", str(server.state), "--as", "alice")
    assert result.code == 0, result.out + result.err

    server.start()  # nobody asks anything more: the run goes on by itself
    crashing.finished(cli)
    assert crashing.attempts() == dict.fromkeys(LOGS, 1)


def test_killed_after_an_approval_while_its_step_runs(crashing: Crashing, cli: CliRunner) -> None:
    server = crashing.server
    crashing.submit()
    server.wait_steps("r", {"first": "succeeded"})
    crashing.release("go")
    server.wait_run("r", "halted")
    assert server.decide("r", "red").status == 200  # recorded through the API
    server.wait_steps("r", {"red": "running"})
    crashing.crash(steps_running=True)
    crashing.release("red")

    server.start()
    # the approved step was running: it may have taken effect, so it waits for a person
    server.wait_steps("r", {"red": "unknown"})
    assert server.wait_run("r", "halted")["state"] == "halted"
    assert server.lines("r", "red", "last") == {"red": 0, "last": 0}
    # running a Red step again is for its approvers to decide
    crashing.operator_reruns(cli, "red", who="alice")
    crashing.finished(cli)  # the approval of its exact action still holds: no new request
    assert crashing.attempts() == {**dict.fromkeys(LOGS, 1), "red": 2}
    assert [r["event"] for r in server.audit("r")].count("approval.requested") == 1


def test_sigterm_lets_running_steps_finish_and_the_next_start_goes_on(
    crashing: Crashing, cli: CliRunner
) -> None:
    """Not a crash: a stopping server starts no step, waits for the running ones, exits 0."""
    server = crashing.server
    crashing.submit()
    server.wait_steps("r", {"slow": "running", "again": "running"})
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    # draining: not ready any more, but the API still answers
    wait_until("the server to drain", lambda: server.get("/readyz", who=None).status == 503)
    crashing.release("go")  # the running steps may end now, within the grace period
    crashing.release("red")
    assert server.process.wait(timeout=PATIENCE) == 0, server.output()
    assert not crashing.sandboxes(server.pid)
    # the run was left running, its next step not started: nothing is unknown
    with contextlib.closing(RunStore(server.state)) as store:
        assert store.run_states()["r"] == "running"
        steps = {k: v.state for k, v in store.steps("r").items()}
    assert steps == {
        "first": "succeeded",
        "slow": "succeeded",
        "again": "succeeded",
        "red": "pending",
        "last": "pending",
    }

    server.start()  # goes on by itself, to the Red step
    server.wait_steps("r", {"red": "awaiting_approval"})
    assert server.decide("r", "red").status == 200
    crashing.finished(cli)
    assert crashing.attempts() == dict.fromkeys(LOGS, 1)

"""``luminaguard run`` on a terminal: a Red step's card is shown and decided inline.

The run is started on a pseudo-terminal (its stdin and stdout), as a person would.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from luminaguard.scheduler.store import RunStore
from luminaguard.server.claim import ServerClaim
from tests.conftest import ROOT, CliRunner, Writer

pytestmark = pytest.mark.usefixtures("sandbox")

# the Red step's command carries a terminal escape: the card must show it inert
WORKLOAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  approval: {timeout: 1h}
  rules:
    - id: safe
      match: {program: [echo, cat], redirects: {path: /work/**}}
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
    - {id: make, agent: a, run: "echo data > /work/data.txt"}
    - id: ship
      agent: a
      run: "tee -a /work/shipped.txt < /work/data.txt # \\e]0;owned\\a"
      needs: [make]
    - {id: after, agent: a, run: "cat /work/shipped.txt", needs: [ship]}
"""


class Terminal:
    """``luminaguard ARGS...`` run on a pseudo-terminal; its output collected as it comes."""

    def __init__(self, *args: str) -> None:
        master, slave = os.openpty()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "LUMINAGUARD_USER": "alice"}
        env.update(COLUMNS="200", TERM="xterm")
        argv = [sys.executable, "-m", "luminaguard", *args]
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True
        )
        os.close(slave)
        self.master = master
        self.output = b""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                if self.process.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # the other side closed
                return
            if not chunk:
                return
            self.output += chunk

    def expect(self, text: str, limit: float = 60) -> None:
        """Wait until ``text`` was printed (the output so far in the failure)."""
        deadline = time.monotonic() + limit
        while text.encode() not in self.output:
            if time.monotonic() > deadline or self.process.poll() is not None:
                time.sleep(0.2)
                if text.encode() in self.output:
                    return
                raise AssertionError(f"never printed {text!r}:\n{self.text()}")
            time.sleep(0.05)

    def type(self, line: str) -> None:
        """Type a line."""
        os.write(self.master, line.encode() + b"\n")

    def wait(self, limit: float = 60) -> int:
        """The exit code."""
        code = self.process.wait(limit)
        self.reader.join(5)
        os.close(self.master)
        return code

    def text(self) -> str:
        """The output, as text."""
        return self.output.decode(errors="replace")


def start(write: Writer, state: Path, *extra: str) -> Terminal:
    path = str(write("w.yaml", WORKLOAD))
    return Terminal("run", path, "--state", str(state), "--run-id", "r", *extra)


def shipped(state: Path) -> str:
    path = state / "runs" / "r" / "agents" / "a" / "work" / "shipped.txt"
    return path.read_text() if path.exists() else ""


def states(state: Path) -> dict[str, tuple[str, int]]:
    store = RunStore(state)
    try:
        return {k: (v.state, v.attempts) for k, v in store.steps("r").items()}
    finally:
        store.close()


def test_typing_a_approves_and_the_run_finishes(write: Writer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    terminal = start(write, state)
    terminal.expect("ship: [a]pprove, [d]eny, [w]ait? ")
    assert "r ship  [pending]" in terminal.text()
    assert "\\x1b]0;owned\\x07" in terminal.text()  # the card's text is inert
    assert b"\x1b]0;owned" not in terminal.output
    terminal.type("a")
    assert terminal.wait() == 0, terminal.text()
    assert "ship: approved by alice" in terminal.text()
    assert "run r: succeeded" in terminal.text()
    assert shipped(state) == "data\n"  # the effect, once
    assert states(state)["ship"] == ("succeeded", 1)
    decided = RunStore(state).approvals("approved")[0]
    assert decided.approver == "alice"


def test_typing_d_and_a_reason_denies(write: Writer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    terminal = start(write, state)
    terminal.expect("[w]ait? ")
    terminal.type("d")
    terminal.expect("reason: ")
    terminal.type("not today")
    assert terminal.wait() == 2, terminal.text()
    assert "ship: denied by alice" in terminal.text()
    assert shipped(state) == ""
    assert states(state)["ship"] == ("denied", 0)
    assert RunStore(state).approvals("denied")[0].reason == "not today"


def test_a_decision_made_elsewhere_ends_the_wait(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    terminal = start(write, state)
    terminal.expect("[w]ait? ")
    approved = cli("approve", "r", "ship", "--state", str(state), "--as", "bob")
    assert approved.code == 0, approved.out + approved.err
    assert terminal.wait() == 0, terminal.text()
    assert "ship: decided elsewhere: approved by bob" in terminal.text()
    assert shipped(state) == "data\n"
    assert states(state)["ship"] == ("succeeded", 1)


def test_wait_leaves_the_request_and_exits_3(write: Writer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    terminal = start(write, state)
    terminal.expect("[w]ait? ")
    terminal.type("w")
    assert terminal.wait() == 3, terminal.text()
    assert states(state)["ship"] == ("awaiting_approval", 0)


def test_no_wait_exits_3_as_before(write: Writer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    terminal = start(write, state, "--no-wait")
    assert terminal.wait() == 3, terminal.text()
    assert "[w]ait?" not in terminal.text()
    assert "awaiting approval" in terminal.text()
    assert states(state)["ship"] == ("awaiting_approval", 0)


def test_without_a_terminal_exits_3_as_before(write: Writer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    argv = [sys.executable, "-m", "luminaguard", "run", str(write("w.yaml", WORKLOAD))]
    argv += ["--state", str(state), "--run-id", "r"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert b"[w]ait?" not in done.stdout
    assert states(state)["ship"] == ("awaiting_approval", 0)


def test_a_server_serving_the_folder_continues_the_run(write: Writer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    claim = ServerClaim(state, "http://127.0.0.1:1")
    try:
        terminal = start(write, state)
        terminal.expect("[w]ait? ")
        terminal.type("a")
        assert terminal.wait() == 3, terminal.text()
    finally:
        claim.release()
    assert "http://127.0.0.1:1) continues the run" in terminal.text()
    assert states(state)["ship"] == ("awaiting_approval", 0)  # approved, not resumed here
    assert RunStore(state).approvals("approved")[0].approver == "alice"

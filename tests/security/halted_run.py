"""A run halted on a Red step that appends a line to /work/ship.log: the attacks' target."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, CliRunner, Writer

POLICY = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  approval: {timeout: 1h%s}
  rules:
    - id: safe
      match: {program: echo, args: {"0": ready}, redirects: {path: /work/ready.txt}}
      risk: green
      reason: safe
%s---
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
    - {id: make, agent: a, run: "echo ready > /work/ready.txt"}
    - {id: ship, agent: a, run: "%s", needs: [make]}
"""
SHIP = "echo shipped >> /work/ship.log"


def workload(write: Writer, approval: str = "", rules: str = "", ship: str = SHIP) -> str:
    """The workload's file; ``approval`` extends the policy's approval, ``rules`` adds rules."""
    return str(write("w.yaml", POLICY % (approval, rules, ship)))


def halt(cli: CliRunner, path: str, state: Path) -> None:
    """Run the workload as run ``r``: it halts on ``ship``."""
    result = cli("run", path, "--state", str(state), "--run-id", "r")
    assert result.code == 3, result.out + result.err


def work(state: Path) -> Path:
    """The agent's /work on the host."""
    return state / "runs" / "r" / "agents" / "a" / "work"


def shipped(state: Path) -> int:
    """How many times the Red step ran."""
    log = work(state) / "ship.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def sql(state: Path, statement: str, *params: object) -> None:
    """Edit runs.db directly, as an attacker with write access to it."""
    db = sqlite3.connect(state / "runs.db", isolation_level=None)
    try:
        db.execute(statement, params)
    finally:
        db.close()


def start(state: Path, *command: str) -> subprocess.Popen[str]:
    """``luminaguard COMMAND... --state STATE`` in a process of its own."""
    argv = [sys.executable, "-m", "luminaguard", *command, "--state", str(state)]
    return subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

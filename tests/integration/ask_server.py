"""The test MCP server that asks questions (tests/fixtures/servers/ask.py), as an agent runs it.

The tree is mounted at /opt/lg and this venv at /opt/venv (a git worktree has none of its
own); the Python the venv is made from is shown at its own path where it is not the
system's (pyenv's: the venv's interpreter links to it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import ROOT

BASE = Path(sys.base_prefix)
MOUNTS = f"{{source: {ROOT}, target: /opt/lg}}, {{source: {sys.prefix}, target: /opt/venv}}" + (
    "" if BASE.is_relative_to("/usr") else f", {{source: {BASE}, target: {BASE}}}"
)
COMMAND = "/opt/venv/bin/python"


def documents(server: str, script: str, timeout: str | None = None) -> str:
    """A Policy greening ``server``, an Agent running ``tests/fixtures/servers/SCRIPT``
    as that stdio server (with ``question_timeout`` if given), and the head of a
    Workload ``w`` whose steps follow."""
    timeout_line = f"\n      question_timeout: {timeout}" if timeout else ""
    return f"""\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {{name: p}}
spec:
  rules:
    - {{id: {server}, match: {{server: {server}}}, risk: green, reason: a test server}}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {{name: a}}
spec:
  policy: p
  mounts: [{MOUNTS}]
  mcp_servers:
    {server}:
      command: {COMMAND}
      args: [/opt/lg/tests/fixtures/servers/{script}]{timeout_line}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {{name: w}}
spec:
  steps:
"""

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
ARGS = "[/opt/lg/tests/fixtures/servers/ask.py]"

"""``luminaguard.lock``: what each agent's MCP servers offered when they were locked.

For every tool: its annotations as the server gave them, SHA-256 of its description
and input schema, and the schema itself (so the compiler can check arguments). The
compiler takes annotations from here; the runner compares the live server with it
and treats calls to a tool that changed (a "rug pull") as Red.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from luminaguard.errors import UsageError
from luminaguard.transport.base import ToolInfo

LOCK_FILE = "luminaguard.lock"


class LockedTool(BaseModel):
    """One tool as locked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    annotations: dict[str, bool]
    description_sha256: str
    input_schema_sha256: str
    input_schema: dict[str, Any]

    @classmethod
    def of(cls, tool: ToolInfo) -> LockedTool:
        """Lock a live tool."""
        return cls(**tool.fingerprint(), input_schema=tool.input_schema)

    def fingerprint(self) -> dict[str, Any]:
        """What must stay equal for the tool to mean the same thing."""
        return self.model_dump(exclude={"input_schema"})


class LockedServer(BaseModel):
    """The tools of one agent's server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tools: dict[str, LockedTool]


class ToolLock(BaseModel):
    """The whole lock file: servers keyed ``AGENT/SERVER``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    servers: dict[str, LockedServer] = {}

    def server(self, agent: str, server: str) -> LockedServer | None:
        """The locked server of an agent, if locked."""
        return self.servers.get(f"{agent}/{server}")

    def to_json(self) -> str:
        """Deterministic text for the file."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def load_lock(path: Path) -> ToolLock:
    """Read a lock file; a malformed one is a usage error naming the file."""
    try:
        return ToolLock.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError) as exc:
        raise UsageError(f"{path}: not a valid lock file: {exc}") from exc


def add_lock_option(parser: argparse.ArgumentParser) -> None:
    """``--lock FILE``: the lock to compile against (default: ./luminaguard.lock if present)."""
    parser.add_argument(
        "--lock", metavar="FILE", help=f"tool lock file (default: ./{LOCK_FILE} when it exists)"
    )


def find_lock(explicit: str | None) -> ToolLock | None:
    """The lock named on the command line, else ``luminaguard.lock`` here, else none."""
    if explicit:
        return load_lock(Path(explicit))
    default = Path(LOCK_FILE)
    return load_lock(default) if default.is_file() else None


def server_differences(locked: LockedServer, now: LockedServer) -> list[str]:
    """How one locked server differs from another, one line each."""
    found: list[str] = []
    for name in sorted(set(locked.tools) | set(now.tools)):
        before, after = locked.tools.get(name), now.tools.get(name)
        if before is None:
            found.append(f"tool {name!r} is new since the lock")
        elif after is None:
            found.append(f"tool {name!r} is gone since the lock")
        else:
            found += [f"tool {name!r}: {what}" for what in changes(before, after)]
    return found


def changes(before: LockedTool, after: LockedTool) -> list[str]:
    """What changed between two versions of a tool."""
    found = []
    if before.annotations != after.annotations:
        found.append(f"annotations changed from {before.annotations} to {after.annotations}")
    if before.description_sha256 != after.description_sha256:
        found.append("description changed")
    if before.input_schema_sha256 != after.input_schema_sha256:
        found.append("input schema changed")
    return found

"""The approval card: what a person sees before approving a Red step."""

from __future__ import annotations

import difflib
from pathlib import Path, PurePosixPath
from typing import Any

from luminaguard.compiler.plan import PlannedStep
from luminaguard.policy.action import Action, Decision

_WRITE_TOOLS = ("write_file", "edit_file", "create_file")
_DIFF_LIMIT = 200_000


def host_path(guest: str, views: dict[str, Path]) -> Path | None:
    """The host file behind a sandbox path, when a view (``/work``, a mount) contains it."""
    path = PurePosixPath(guest)
    if ".." in path.parts or not path.is_absolute():
        return None
    for target, source in sorted(views.items(), key=lambda item: -len(item[0])):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source / path.relative_to(target)
    return None


def file_diff(action: Action, views: dict[str, Path]) -> str | None:
    """Unified diff of a file write against the file's current content, when knowable."""
    if action.kind != "call" or not (action.tool or "").endswith(_WRITE_TOOLS):
        return None
    guest, content = action.args.get("path"), action.args.get("content")
    if not isinstance(guest, str) or not isinstance(content, str):
        return None
    host = host_path(guest, views)
    if host is None:
        return None
    try:
        current = host.read_text(encoding="utf-8")[:_DIFF_LIMIT] if host.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return None
    lines = difflib.unified_diff(
        current.splitlines(keepends=True), content[:_DIFF_LIMIT].splitlines(keepends=True),
        fromfile=f"{guest} (now)", tofile=f"{guest} (after)",
    )  # fmt: skip
    return "".join(lines)


def approval_card(
    step: PlannedStep, action: Action, decision: Decision, views: dict[str, Path]
) -> dict[str, Any]:
    """Everything needed to decide: the action in full, and the rule that made it Red."""
    card: dict[str, Any] = {
        "step": step.id,
        "agent": step.agent,
        "action": action.describe(),
        "kind": action.kind,
        "arguments": action.args if action.kind == "call" else {"command": action.command},
        "policy": decision.policy,
        "rule": decision.rule or "(default)",
        "rule_source": decision.source,
        "reason": decision.reason,
        "action_hash": action.content_hash(),
    }
    diff = file_diff(action, views)
    if diff is not None:
        card["diff"] = diff
    return card

"""The approval card: what a person sees before approving a Red step."""

from __future__ import annotations

import difflib
from pathlib import Path, PurePosixPath
from typing import Any

from luminaguard.compiler.plan import PlannedStep
from luminaguard.hostile_files import Missing, Unreadable, read_beneath
from luminaguard.hostile_text import visible
from luminaguard.policy.action import Action, Decision

_WRITE_TOOLS = ("write_file", "edit_file", "create_file")
_DIFF_LIMIT = 200_000
#: Lines now times lines after beyond which no diff is made (a planted file's lines).
_DIFF_WORK = 4_000_000
_NO_NEWLINE = "\n\\ No newline at end of file\n"


def host_path(guest: str, views: dict[str, Path]) -> tuple[Path, PurePosixPath] | None:
    """Where a sandbox path lives on the host: its view's folder and the path beneath it.

    A view is ``/work`` or a mount. Read the file with ``read_beneath``: joining the two
    and opening the result would follow the guest's symbolic links.
    """
    path = PurePosixPath(guest)
    if ".." in path.parts or not path.is_absolute():
        return None
    for target, source in sorted(views.items(), key=lambda item: -len(item[0])):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source, path.relative_to(target)
    return None


def current_content(root: Path, path: PurePosixPath) -> str:
    """The file's content now ("" for a new file), or why it is not shown.

    Read beneath its view without following the guest's symbolic links, regular files
    of at most the diff limit only. The view's folder itself is reached without links
    too: a mount's source may lie below a folder a sandbox writes (the work folder is
    given resolved, see ``Runner._views``).
    """
    try:
        return read_beneath(root, path, _DIFF_LIMIT, root_links=False).decode("utf-8")
    except Missing:
        return ""
    except UnicodeDecodeError as exc:
        raise Unreadable("not UTF-8 text") from exc


def file_diff(action: Action, views: dict[str, Path]) -> str | None:
    """Unified diff of a file write against the file's current content, when knowable."""
    if action.kind != "call" or not (action.tool or "").endswith(_WRITE_TOOLS):
        return None
    guest, content = action.args.get("path"), action.args.get("content")
    if not isinstance(guest, str) or not isinstance(content, str):
        return None
    found = host_path(guest, views)
    if found is None:
        return None
    shown = visible(guest)  # one line: a newline in the path must not draw diff lines
    try:
        current = current_content(*found)
    except Unreadable as exc:
        return f"{shown} (now): {exc}\n"
    before, after = _lines(current), _lines(content[:_DIFF_LIMIT])
    if len(before) * len(after) > _DIFF_WORK:  # difflib can be quadratic in lines
        return f"{shown}: too many lines to diff ({len(before)} now, {len(after)} after)\n"
    lines = difflib.unified_diff(
        before, after, fromfile=f"{shown} (now)", tofile=f"{shown} (after)"
    )
    return "".join(line if line.endswith("\n") else line + _NO_NEWLINE for line in lines)


def _lines(text: str) -> list[str]:
    """Lines as a file has them: ended by a newline only.

    ``splitlines`` also breaks at a carriage return or a form feed, which would let a
    file shape what its diff looks like.
    """
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def approval_card(
    step: PlannedStep, action: Action, decision: Decision, views: dict[str, Path]
) -> dict[str, Any]:
    """Everything needed to decide: the action in full, and the rule that made it Red.

    The texts meant for reading (``action``, ``reason``, ``diff``) hold no control
    characters (``visible``); ``arguments`` are the action's own values, as data.
    """
    card: dict[str, Any] = {
        "step": step.id,
        "agent": step.agent,
        "action": visible(action.describe()),
        "kind": action.kind,
        "arguments": action.args if action.kind == "call" else {"command": action.command},
        "policy": decision.policy,
        "rule": decision.rule or "(default)",
        "rule_source": decision.source,
        "reason": visible(decision.reason),
        "action_hash": action.content_hash(),
    }
    diff = file_diff(action, views)
    if diff is not None:
        card["diff"] = visible(diff, multiline=True)
    return card

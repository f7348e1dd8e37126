"""Approval cards: the action in full, the rule, and a diff for file writes."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from luminaguard.compiler.plan import PlannedStep
from luminaguard.policy.action import Action, Decision
from luminaguard.scheduler.cards import approval_card, file_diff, host_path

DECISION = Decision(
    risk="red", policy="p", rule="fs-write", reason="changes files", source="p.yaml:9"
)


def write_action(path: str, content: str, tool: str = "write_file") -> Action:
    return Action(kind="call", server="fs", tool=tool, args={"path": path, "content": content})


def test_host_path_maps_views() -> None:
    views = {"/work": Path("/s/work"), "/data/repo": Path("/src/repo")}
    assert host_path("/work/a/b.txt", views) == (Path("/s/work"), PurePosixPath("a/b.txt"))
    assert host_path("/data/repo/x", views) == (Path("/src/repo"), PurePosixPath("x"))
    assert host_path("/etc/passwd", views) is None
    assert host_path("/work/../etc/passwd", views) is None
    assert host_path("relative", views) is None


def test_diff_against_current_content(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("one\ntwo\n")
    diff = file_diff(write_action("/work/notes.txt", "one\nthree\n"), {"/work": tmp_path})
    assert diff is not None
    assert "-two" in diff and "+three" in diff and "/work/notes.txt (now)" in diff


def test_diff_of_a_new_file(tmp_path: Path) -> None:
    diff = file_diff(write_action("/work/new.txt", "hello\n"), {"/work": tmp_path})
    assert diff is not None and "+hello" in diff


def test_no_diff_when_it_cannot_be_known(tmp_path: Path) -> None:
    views = {"/work": tmp_path}
    assert file_diff(write_action("/elsewhere/x", "a"), views) is None
    assert file_diff(write_action("/work/x", "a", tool="read_file"), views) is None
    assert file_diff(Action(kind="run", command="rm -rf /"), views) is None
    assert (
        file_diff(Action(kind="call", server="fs", tool="write_file", args={"path": 3}), views)
        is None
    )


def test_card_carries_everything(tmp_path: Path) -> None:
    action = write_action("/work/a.txt", "x\n")
    step = PlannedStep(
        order=1, id="w", agent="a", action=action, needs=[], runtime=False, source="w.yaml:1:1"
    )
    card = approval_card(step, action, DECISION, {"/work": tmp_path})
    assert card["arguments"] == {"path": "/work/a.txt", "content": "x\n"}
    assert (card["rule"], card["rule_source"], card["reason"]) == (
        "fs-write",
        "p.yaml:9",
        "changes files",
    )
    assert card["action_hash"] == action.content_hash()
    assert "+x" in card["diff"]
    run = Action(kind="run", command="rm -f /work/a")
    card = approval_card(step, run, DECISION.model_copy(update={"rule": None}), {})
    assert card["arguments"] == {"command": "rm -f /work/a"} and card["rule"] == "(default)"
    assert "diff" not in card

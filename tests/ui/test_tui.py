"""The approval queue (``luminaguard approve`` on a terminal), driven headless by Textual's pilot.

Runs halt on the fake backend (no process starts); the app reads the same state folder
through its own store, as ``luminaguard approve`` would, with the test's clock.
"""

from __future__ import annotations

import asyncio
import io
import types
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode
from textual.pilot import Pilot

from luminaguard.compiler import Plan, compile_paths
from luminaguard.scheduler import decisions
from luminaguard.scheduler import store as store_module
from luminaguard.scheduler.store import RunStore
from luminaguard.transport.base import ToolInfo
from luminaguard.transport.fake import FakeToolClient
from luminaguard.ui import tui
from luminaguard.ui.approval_queue import parsed_command
from tests.conftest import CliRunner
from tests.scheduler.harness import Harness, compile_steps

HEAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  approval: {timeout: 10m}
  rules:
    - {id: writes, match: {server: tools, tool: write_file}, risk: red, reason: writes files}
    - {id: deletes, match: {program: [rm]}, risk: red, reason: deletes files}
    - {id: safe, match: {program: [echo]}, risk: green, reason: safe}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  limits: {timeout: 20s}
  mcp_servers:
    tools: {url: "http://127.0.0.1:9/never-reached"}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
"""
WRITE = (
    '    - {id: w, agent: a, call: tools.write_file, args: {path: /work/notes.txt, content: "%s"}}'
    "\n"
)
REMOVE = '    - {id: rm, agent: a, run: "rm -f /work/old.txt && echo done"}\n'
WRITE_TOOL = ToolInfo("write_file", "Write a file.", {"type": "object"}, {})
SIZE = (100, 40)


class SVGExtension(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "svg"


def plan(folder: Path, name: str, steps: str) -> Plan:
    path = folder / f"{name}.yaml"
    path.write_text(HEAD + steps)  # compiled from tmp_path: sources are relative, as shown
    return compile_paths([str(path.relative_to(Path.cwd()))])[1][0]


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.chdir(tmp_path)
    found = Harness(tmp_path / "state")
    found.tools.tools = [WRITE_TOOL]
    # requests carry the test's clock as the time they were made: fixed ages on screen
    monkeypatch.setattr(store_module, "time", types.SimpleNamespace(time=found.clock))
    yield found
    found.store.close()


def halted(harness: Harness, tmp_path: Path, content: str = "one\\nthree\\n") -> None:
    """Run r1 (a write and an rm) and r2 (an rm), each halting on its Red steps."""
    (tmp_path / "one").mkdir(exist_ok=True)
    (tmp_path / "two").mkdir(exist_ok=True)
    assert harness.start(plan(tmp_path / "one", "w", WRITE % content + REMOVE), "r1").state
    harness.clock.now += 30
    assert harness.start(plan(tmp_path / "two", "w", REMOVE), "r2").state
    harness.clock.now += 60


App = tui.ApprovalApp


def drive(
    harness: Harness,
    test: Callable[[App, Pilot[None]], Awaitable[None]],
    who: str = "carol",
    poll: float = 0.05,
    role: str | None = None,
) -> None:
    """Run ``test(app, pilot)`` on an app over the harness's state folder."""
    store = RunStore(harness.state)

    async def go() -> None:
        app = App(store, who, clock=harness.clock, poll=poll, role=role)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await test(app, pilot)

    try:
        asyncio.run(go())
    finally:
        store.close()


async def until(pilot: Pilot[None], holds: Callable[[], bool], within: float = 5.0) -> None:
    """Let the app's poll run until ``holds()`` (a few ticks; a busy machine gets longer)."""
    for _ in range(int(within / 0.05)):
        if holds():
            return
        await pilot.pause(0.05)
    assert holds()


def text_of(widget: object) -> str:
    console = Console(file=io.StringIO(), width=200, record=True)
    console.print(widget.content)  # type: ignore[attr-defined]
    return console.export_text()


def card_text(app: App) -> str:
    return text_of(app.card)


def listed(app: App) -> list[tuple[str, str]]:
    return [(r.run_id, r.step_id) for r in app.requests]


def state_of(harness: Harness, run_id: str, step_id: str) -> str:
    [request] = [r for r in harness.store.approvals() if (r.run_id, r.step_id) == (run_id, step_id)]
    return request.state


def test_the_queue_lists_every_pending_step_across_runs(harness: Harness, tmp_path: Path) -> None:
    halted(harness, tmp_path)

    async def test(app: App, pilot: Pilot[None]) -> None:
        assert listed(app) == [("r1", "w"), ("r1", "rm"), ("r2", "rm")]
        first = app.query_one("#queue").get_row_at(0)
        assert [str(cell) for cell in first] == ["1m 30s", "r1", "w", "a", "p/writes", "8m 30s"]

    drive(harness, test)


def test_approving_and_denying_from_the_keyboard_change_the_store(
    harness: Harness, tmp_path: Path
) -> None:
    halted(harness, tmp_path)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("a")  # r1 w
        assert listed(app) == [("r1", "rm"), ("r2", "rm")]
        await pilot.press("down", "d")  # r2 rm: asks why
        await pilot.press(*"too broad", "enter")
        assert listed(app) == [("r1", "rm")]

    drive(harness, test)
    assert state_of(harness, "r1", "w") == "approved"
    assert state_of(harness, "r2", "rm") == "denied"
    assert harness.store.steps("r2")["rm"].state == "denied"
    [denial] = harness.store.audit.records("r2", "rm", "approval.denied")
    assert denial.data["approver"] == "carol" and denial.data["reason"] == "too broad"
    [approval] = harness.store.audit.records("r1", "w", "approval.approved")
    assert approval.data["action_hash"] == harness.store.steps("r1")["w"].action_hash


def test_escape_in_the_reason_box_denies_nothing(harness: Harness, tmp_path: Path) -> None:
    halted(harness, tmp_path)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("d", "escape")
        assert len(listed(app)) == 3

    drive(harness, test)
    assert state_of(harness, "r1", "w") == "pending"


def test_approve_run_lists_each_step_and_hash_then_approves_each(
    harness: Harness, tmp_path: Path
) -> None:
    halted(harness, tmp_path)
    hashes = {s: harness.store.steps("r1")[s].action_hash for s in ("w", "rm")}

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("A")
        shown = text_of(app.screen.query_one("Static"))
        assert all(digest in shown for digest in hashes.values() if digest)
        await pilot.press("y")
        assert listed(app) == [("r2", "rm")]

    drive(harness, test)
    for step, digest in hashes.items():
        [record] = harness.store.audit.records("r1", step, "approval.approved")
        assert record.data["action_hash"] == digest
    assert state_of(harness, "r2", "rm") == "pending"


def test_the_card_shows_the_diff_of_a_write_and_the_parsed_command_of_a_run(
    harness: Harness, tmp_path: Path
) -> None:
    halted(harness, tmp_path)

    async def test(app: App, pilot: Pilot[None]) -> None:
        text = card_text(app)
        assert "writes files" in text and "p/writes" in text
        assert "+one" in text and "+three" in text and "/work/notes.txt (after)" in text
        await pilot.press("down")
        text = card_text(app)
        assert "deletes files" in text
        assert "rm -f /work/old.txt && echo done" in text
        assert '["rm", "-f", "/work/old.txt"]' in text and '["echo", "done"]' in text

    drive(harness, test)


def test_parsed_command_says_why_it_cannot_be_decided() -> None:
    assert parsed_command("echo $(cat x) > /work/o") != []
    assert parsed_command("ls -l > /work/o") == ['["ls", "-l"]  (> /work/o)']


def test_an_expiring_request_disappears_and_is_recorded(harness: Harness, tmp_path: Path) -> None:
    halted(harness, tmp_path)

    async def test(app: App, pilot: Pilot[None]) -> None:
        assert len(listed(app)) == 3
        harness.clock.now += 520  # r1's requests are past their 10 minutes, r2's not yet
        await until(pilot, lambda: listed(app) == [("r2", "rm")])
        assert "expired" in text_of(app.status)

    drive(harness, test)
    assert state_of(harness, "r1", "w") == "expired"
    [record] = harness.store.audit.records("r1", "w", "approval.expired")
    assert record.data["reason"] == "no decision before the timeout"
    harness.tools = FakeToolClient([WRITE_TOOL], name="a/tools")  # a new process's session
    harness.resume("r1")  # the run goes on: the step is denied
    step = harness.store.steps("r1")["w"]
    assert step.state == "denied", step.error


def test_a_request_decided_elsewhere_disappears_live(harness: Harness, tmp_path: Path) -> None:
    halted(harness, tmp_path)

    async def test(app: App, pilot: Pilot[None]) -> None:
        assert len(listed(app)) == 3
        harness.decide("w", "approved", "dave")  # another process, another connection
        await until(pilot, lambda: listed(app) == [("r1", "rm"), ("r2", "rm")])

    drive(harness, test)


def test_a_new_request_appears_live(harness: Harness, tmp_path: Path) -> None:
    (tmp_path / "two").mkdir()

    async def test(app: App, pilot: Pilot[None]) -> None:
        assert listed(app) == []
        assert "no approval requests waiting" in card_text(app)
        await harness.runner().start(plan(tmp_path / "two", "w", REMOVE), "r2")
        await until(pilot, lambda: listed(app) == [("r2", "rm")])

    drive(harness, test)


def test_the_filter_keeps_matching_rows(harness: Harness, tmp_path: Path) -> None:
    halted(harness, tmp_path)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("slash", *"r2", "enter")
        assert listed(app) == [("r2", "rm")]
        await pilot.press("slash", "ctrl+a", "ctrl+k", "enter")
        assert len(listed(app)) == 3

    drive(harness, test)


def test_the_audit_trail_opens_and_closes(harness: Harness, tmp_path: Path) -> None:
    halted(harness, tmp_path)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("t")
        assert isinstance(app.screen, tui.AuditScreen)
        trail = text_of(app.screen.query_one("Static"))
        assert "run.created" in trail and "approval.requested" in trail
        await pilot.press("escape")
        assert not isinstance(app.screen, tui.AuditScreen)

    drive(harness, test)


def test_an_approver_rule_refusal_is_shown_and_nothing_recorded(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    halted(harness, tmp_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise decisions.NotAllowed("w: only alice may approve; nothing recorded")

    monkeypatch.setattr(decisions, "approve", refuse)

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("a")
        assert "only alice may approve" in text_of(app.status)
        assert len(listed(app)) == 3

    drive(harness, test)


SHIP = '    - {id: ship, agent: a, run: "cp /work/data.txt /work/shipped.txt"}\n'


def halted_for_two(harness: Harness, approval: str = "1h, min_approvals: 2") -> None:
    """Run m, halting on a Red step that needs two distinct approvers."""
    folder = Path("two-approvers")  # relative: the card's sources are as shown
    folder.mkdir()
    plan = compile_steps(folder, SHIP, approval=approval)
    assert harness.start(plan, "m").state == "halted"
    harness.clock.now += 60


def test_a_counted_approval_keeps_the_request_and_a_name_counts_once(
    harness: Harness, tmp_path: Path
) -> None:
    halted_for_two(harness)

    async def alice(app: App, pilot: Pilot[None]) -> None:
        assert "approvals: 0 of 2" in card_text(app)
        await pilot.press("a")
        assert "approval by alice counted; 1 more needed" in text_of(app.status)
        assert listed(app) == [("m", "ship")]  # still waiting for a second approver
        assert "approvals: 1 of 2 (alice)" in card_text(app)
        await pilot.press("a")  # the same name again: refused, nothing recorded
        assert "a name counts once" in text_of(app.status)
        assert listed(app) == [("m", "ship")]

    drive(harness, alice, who="alice")
    assert state_of(harness, "m", "ship") == "pending"
    votes = harness.store.audit.records("m", "ship", "approval.vote")
    assert [vote.data["approver"] for vote in votes] == ["alice"]

    async def bob(app: App, pilot: Pilot[None]) -> None:
        assert "approvals: 1 of 2 (alice)" in card_text(app)
        await pilot.press("a")
        assert "m ship: approved by bob" in text_of(app.status)
        assert listed(app) == []

    drive(harness, bob, who="bob")
    assert state_of(harness, "m", "ship") == "approved"
    [approval] = harness.store.audit.records("m", "ship", "approval.approved")
    assert approval.data["approvers"] == ["alice", "bob"]


def test_role_approvers_count_the_token_role_given_to_the_queue(harness: Harness) -> None:
    halted_for_two(harness, "1h, min_approvals: 2, approvers: ['role:approver']")

    async def without_role(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("a")
        assert "is not among the approvers" in text_of(app.status)

    async def with_role(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("a")
        assert "approval by alice counted; 1 more needed" in text_of(app.status)

    drive(harness, without_role, who="alice")
    drive(harness, with_role, who="alice", role="approver")
    votes = harness.store.audit.records("m", "ship", "approval.vote")
    assert [(v.data["approver"], v.data["role"]) for v in votes] == [("alice", "approver")]


def test_snapshot_of_a_card_with_approvals_so_far(
    harness: Harness, tmp_path: Path, snapshot: SnapshotAssertion
) -> None:
    halted_for_two(harness)
    decisions.approve(harness.store, "m", "ship", "alice", None, harness.clock)
    shots: list[str] = []

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.pause()
        shots.append(app.export_screenshot(title="approvals"))

    drive(harness, test, poll=3600)
    assert shots[0] == snapshot(extension_class=SVGExtension)


def test_snapshot_of_the_queue_and_the_write_card(
    harness: Harness, tmp_path: Path, snapshot: SnapshotAssertion
) -> None:
    halted(harness, tmp_path)
    shots: list[str] = []

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.pause()
        shots.append(app.export_screenshot(title="queue"))

    drive(harness, test, poll=3600)  # no tick between the last draw and the shot
    assert shots[0] == snapshot(extension_class=SVGExtension)


def test_snapshot_of_a_run_card(
    harness: Harness, tmp_path: Path, snapshot: SnapshotAssertion
) -> None:
    halted(harness, tmp_path)
    shots: list[str] = []

    async def test(app: App, pilot: Pilot[None]) -> None:
        await pilot.press("down")
        await pilot.pause()
        shots.append(app.export_screenshot(title="card"))

    drive(harness, test, poll=3600)
    assert shots[0] == snapshot(extension_class=SVGExtension)


def test_escapes_and_markup_in_a_card_show_as_text(
    harness: Harness, tmp_path: Path, snapshot: SnapshotAssertion
) -> None:
    halted(harness, tmp_path, content="[bold red]APPROVED[/bold red]\\e[2J\\e]0;t\\a\\u202e\\n")

    async def test(app: App, pilot: Pilot[None]) -> None:
        text = card_text(app)
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
        assert "[bold red]APPROVED[/bold red]" in text
        assert "\\x1b[2J" in text and "\\u202e" in text
        svg = app.export_screenshot(title="hostile")
        assert "[bold red]APPROVED[/bold red]" in svg.replace("&#160;", " ")
        assert svg == snapshot(extension_class=SVGExtension)

    drive(harness, test, poll=3600)


def test_approve_without_a_terminal_is_a_usage_error(cli: CliRunner, tmp_path: Path) -> None:
    result = cli("approve", "--state", str(tmp_path / "s"))
    assert result.code == 1 and "the queue needs a terminal" in result.err
    result = cli("approve", "r1", "--state", str(tmp_path / "s"))
    assert result.code == 1 and "give RUN and STEP" in result.err


def test_other_commands_do_not_import_textual() -> None:
    import subprocess
    import sys

    code = "import sys, luminaguard.ui.cli; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_request_without_an_audit_record_is_not_shown(harness: Harness, tmp_path: Path) -> None:
    halted(harness, tmp_path)
    harness.store.db.execute(
        "INSERT INTO approvals (run_id, step_id, action_hash, state, card, requested, expires)"
        " VALUES ('r2', 'rm', 'sha256:forged', 'pending', '{\"action\": \"forged\"}', 0, 9e9)"
    )

    async def test(app: App, pilot: Pilot[None]) -> None:
        assert listed(app) == [("r1", "w"), ("r1", "rm"), ("r2", "rm")]
        assert "1 requests not shown: no authentic audit record" in text_of(app.status)

    drive(harness, test)

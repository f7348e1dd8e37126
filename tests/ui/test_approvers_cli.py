"""``luminaguard approvals|approve|deny`` with several approvers (a run halted on the fakes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.server.tokens import TokenFile
from tests.conftest import CliRunner
from tests.scheduler.harness import Harness, compile_steps

RED = """\
    - {id: make, agent: a, run: "echo data > /work/data.txt"}
    - {id: ship, agent: a, run: "cp /work/data.txt /work/shipped.txt", needs: [make]}
"""
SHIP = "cp /work/data.txt /work/shipped.txt"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    found = Harness(tmp_path / "state")
    found.clock.now = time.time()  # the CLI decides on the wall clock
    found.backend.on("echo data > /work/data.txt")
    found.backend.on(SHIP)
    yield found
    found.store.close()


def _halt(harness: Harness, tmp_path: Path, approval: str) -> None:
    plan = compile_steps(tmp_path, RED, approval=f"1h, {approval}")
    assert harness.start(plan).state == "halted"


def _cli(cli: CliRunner, harness: Harness, *args: str) -> tuple[int, str]:
    result = cli(*args, "--state", str(harness.state))
    return result.code, result.out + result.err


def test_two_names_approve_and_the_card_shows_them(
    cli: CliRunner, harness: Harness, tmp_path: Path
) -> None:
    _halt(harness, tmp_path, "min_approvals: 2")
    assert "approved:  0 of 2: nobody yet" in _cli(cli, harness, "approvals")[1]
    code, text = _cli(cli, harness, "approve", "r", "ship", "--as", "alice")
    assert code == 0 and "counted" in text and "1 more needed (approved by alice)" in text
    code, text = _cli(cli, harness, "approve", "r", "ship", "--as", "alice")
    assert code == 1 and "'alice' approved this action already (a name counts once" in text
    assert "approved:  1 of 2: alice" in _cli(cli, harness, "approvals")[1]
    assert harness.resume().state == "halted"
    code, text = _cli(cli, harness, "approve", "r", "ship", "--as", "bob")
    assert code == 0 and "ship: approved by bob" in text
    assert harness.resume().state == "succeeded"
    assert harness.backend.commands.count(SHIP) == 1


def test_a_deny_after_an_approve_denies(cli: CliRunner, harness: Harness, tmp_path: Path) -> None:
    _halt(harness, tmp_path, "min_approvals: 2")
    assert _cli(cli, harness, "approve", "r", "ship", "--as", "alice")[0] == 0
    code, text = _cli(cli, harness, "deny", "r", "ship", "--as", "bob")
    assert code == 0 and "denied by bob" in text
    assert harness.resume().state == "failed"
    assert SHIP not in harness.backend.commands


def test_prevent_self_approval_refuses_the_submitter(
    cli: CliRunner, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMINAGUARD_USER", "carol")
    _halt(harness, tmp_path, "min_approvals: 2, prevent_self_approval: true")
    code, text = _cli(cli, harness, "approve", "r", "ship", "--as", "carol")
    assert code == 1 and "'carol' started this run and may not approve" in text
    assert "approved:  0 of 2: nobody yet" in _cli(cli, harness, "approvals")[1]


def test_a_role_approver_is_matched_through_the_state_folders_tokens(
    cli: CliRunner, harness: Harness, tmp_path: Path
) -> None:
    TokenFile(harness.state).create("bob", "approver")
    TokenFile(harness.state).create("vic", "viewer")
    _halt(harness, tmp_path, "approvers: ['role:approver']")
    for who in ("vic", "mallory"):
        code, text = _cli(cli, harness, "approve", "r", "ship", "--as", who)
        assert code == 1 and f"'{who}'" in text and "not among the approvers" in text
    code, text = _cli(cli, harness, "approve", "r", "ship", "--as", "bob")
    assert code == 0 and "approved by bob" in text
    assert harness.resume().state == "succeeded"

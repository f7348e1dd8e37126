"""Several approvers: ``min_approvals``, ``role:`` approvers and ``prevent_self_approval``.

On the fake backend: a Red step needing two approvals runs only after two distinct
names approved its exact action (counted from the audit log), and one denial denies.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.config.diagnostics import ConfigError
from luminaguard.errors import UsageError
from luminaguard.hypervisor.fake import Outcome
from luminaguard.scheduler import decisions
from luminaguard.scheduler.decisions import NotAllowed, Verdict
from luminaguard.scheduler.states import ApprovalState
from luminaguard.scheduler.store import AlreadyApproved
from tests.scheduler.harness import Harness, compile_steps

RED = """\
    - {id: make, agent: a, run: "echo data > /work/data.txt"}
    - {id: ship, agent: a, run: "cp /work/data.txt /work/shipped.txt", needs: [make]}
    - {id: after, agent: a, run: "cat /work/shipped.txt", needs: [ship]}
"""
SHIP = "cp /work/data.txt /work/shipped.txt"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    found = Harness(tmp_path / "state")
    found.backend.on("echo data > /work/data.txt")
    found.backend.on(SHIP)
    found.backend.on("cat /work/shipped.txt", Outcome(stdout="data\n"))
    yield found
    found.store.close()


def _halt(harness: Harness, tmp_path: Path, approval: str) -> None:
    plan = compile_steps(tmp_path, RED, approval=f"1h, {approval}")
    assert harness.start(plan).state == "halted"
    assert harness.states()["ship"] == ("awaiting_approval", 0)


def _approve(harness: Harness, who: str, role: str | None = None) -> decisions.Recorded:
    return decisions.approve(harness.store, "r", "ship", who, None, harness.clock, role=role)


def _request_state(harness: Harness) -> str:
    [request] = harness.store.approvals(run_id="r")
    return str(request.state)


def test_two_approvals_need_two_distinct_names(harness: Harness, tmp_path: Path) -> None:
    _halt(harness, tmp_path, "min_approvals: 2")
    first = _approve(harness, "alice")
    assert (first.verdict, first.approved_by, first.needed) == (Verdict.COUNTED, ("alice",), 1)
    assert _request_state(harness) == "pending"
    assert harness.resume().state == "halted"  # one of two: nothing runs
    assert SHIP not in harness.backend.commands
    # the same name twice counts once: refused, nothing recorded
    with pytest.raises(AlreadyApproved, match="counts once"):
        _approve(harness, "alice")
    votes = harness.store.audit.records("r", "ship", "approval.vote")
    assert [vote.data["approver"] for vote in votes] == ["alice"]
    assert _request_state(harness) == "pending"
    # the card shows who approved so far, and how many are needed
    [request] = harness.store.approvals(ApprovalState.PENDING)
    card = decisions.as_audited(harness.store, request).card
    assert (card["min_approvals"], card["approved_by"]) == (2, ["alice"])
    second = _approve(harness, "bob")
    assert (second.verdict, second.approved_by, second.needed) == (
        Verdict.APPROVED,
        ("alice", "bob"),
        0,
    )
    assert _request_state(harness) == "approved"
    [approved] = harness.store.audit.records("r", "ship", "approval.approved")
    assert approved.data["approvers"] == ["alice", "bob"]
    assert harness.resume().state == "succeeded"
    assert harness.backend.commands.count(SHIP) == 1


def test_one_deny_after_one_approve_denies(harness: Harness, tmp_path: Path) -> None:
    _halt(harness, tmp_path, "min_approvals: 2")
    assert _approve(harness, "alice").verdict is Verdict.COUNTED
    denied = decisions.deny(harness.store, "r", "ship", "bob", "no")
    assert denied.verdict is Verdict.DENIED
    assert _request_state(harness) == "denied"
    with pytest.raises(UsageError, match="not waiting for a decision"):
        _approve(harness, "carol")  # too late: denied is final
    assert harness.resume().state == "failed"
    assert harness.states()["ship"] == ("denied", 0)
    assert SHIP not in harness.backend.commands


def test_the_runner_counts_audited_approvers_not_the_stored_state(
    harness: Harness, tmp_path: Path
) -> None:
    """An approval written past ``decisions`` (one name of two) does not run the step."""
    _halt(harness, tmp_path, "min_approvals: 2")
    harness.decide("ship", "approved", "alice")  # runs.db and one authentic record
    result = harness.resume()
    assert result.state == "failed"
    ship = harness.store.steps("r")["ship"]
    assert ship.state == "denied" and "1 of 2 approvals" in (ship.error or "")
    assert SHIP not in harness.backend.commands


def test_prevent_self_approval_refuses_the_starter(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMINAGUARD_USER", "carol")  # carol starts the run
    _halt(harness, tmp_path, "min_approvals: 2, prevent_self_approval: true")
    assert _approve(harness, "alice").verdict is Verdict.COUNTED
    for starter in ("carol", getpass.getuser()):
        with pytest.raises(NotAllowed, match="started this run"):
            _approve(harness, starter)
    assert _request_state(harness) == "pending"
    assert _approve(harness, "bob").verdict is Verdict.APPROVED
    assert harness.resume().state == "succeeded"


def test_a_role_approver_matches_the_role_the_caller_gives(
    harness: Harness, tmp_path: Path
) -> None:
    _halt(harness, tmp_path, "approvers: [alice, 'role:approver'], min_approvals: 2")
    with pytest.raises(NotAllowed, match="not among the approvers"):
        _approve(harness, "bob")  # no role known
    with pytest.raises(NotAllowed, match="nor is their role 'viewer'"):
        _approve(harness, "bob", "viewer")
    assert _approve(harness, "bob", "approver").verdict is Verdict.COUNTED
    assert _approve(harness, "alice").verdict is Verdict.APPROVED
    assert harness.resume().state == "succeeded"  # the audited role holds at run time


@pytest.mark.parametrize(
    "approval",
    ["approvers: [alice], min_approvals: 2", "approvers: [alice, alice], min_approvals: 2"],
)
def test_a_policy_naming_fewer_approvers_than_it_needs_is_refused(
    tmp_path: Path, approval: str
) -> None:
    with pytest.raises(ConfigError, match="min_approvals is 2 but only 1 distinct approvers"):
        compile_steps(tmp_path, RED, approval=f"1h, {approval}")
    compile_steps(
        tmp_path, RED, approval="1h, approvers: [alice, 'role:approver'], min_approvals: 3"
    )

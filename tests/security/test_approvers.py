"""Issue #10, section 9: ``approvers`` and ``prevent_self_approval`` are enforced."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner, Writer
from tests.integration.conftest import sandbox  # noqa: F401 (the fixture)
from tests.security.halted_run import halt, shipped, workload

pytestmark = pytest.mark.usefixtures("sandbox")

SHIP_RULE = (
    "    - {id: ship-rule, match: {kind: run, command: {regex: '^echo shipped'}}, risk: red,\n"
    "       reason: ships, approvers: [bob]%s}\n"
)


def _decide(cli: CliRunner, state: Path, verb: str, *who: str) -> tuple[int, str]:
    result = cli(verb, "r", "ship", "--state", str(state), *(("--as", *who) if who else ()))
    return result.code, result.out + result.err


def _nothing_decided(state: Path) -> None:
    store = RunStore(state)
    try:
        assert [a.state for a in store.approvals(run_id="r")] == ["pending"]
        events = {r.event for r in store.audit.records("r", "ship")}
        assert not events & {"approval.approved", "approval.denied"}, events
    finally:
        store.close()


def test_an_approver_not_listed_is_refused(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    """Attack: `approve --as mallory` worked although the policy's approvers are [alice].

    Fixed by 3bd4f68 ("approve, deny: only a listed approver decides; ..."), with the
    terms audited since b39c386.
    """
    state = tmp_path / "state"
    halt(cli, workload(write, approval=", approvers: [alice]"), state)
    for verb in ("approve", "deny"):
        code, text = _decide(cli, state, verb, "mallory")
        assert code == 1 and "'mallory' is not among the approvers of this step (alice)" in text
    _nothing_decided(state)
    assert cli("resume", "r", "--state", str(state)).code == 3
    assert shipped(state) == 0
    assert _decide(cli, state, "approve", "alice")[0] == 0
    assert cli("resume", "r", "--state", str(state)).code == 0
    assert shipped(state) == 1


def test_the_deciding_rules_approvers_replace_the_policys(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: a policy approver approves a step whose rule names other approvers.

    Fixed by 3bd4f68 ("approve, deny: only a listed approver decides; ..."): the rule's
    list wins.
    """
    state = tmp_path / "state"
    halt(cli, workload(write, ", approvers: [alice]", SHIP_RULE % ""), state)
    code, text = _decide(cli, state, "approve", "alice")
    assert code == 1 and "'alice' is not among the approvers of this step (bob)" in text
    _nothing_decided(state)
    assert "approvers: bob" in cli("approvals", "--state", str(state)).out
    assert _decide(cli, state, "approve", "bob")[0] == 0
    assert cli("resume", "r", "--state", str(state)).code == 0
    assert shipped(state) == 1


def test_the_runner_refuses_an_approval_by_someone_not_listed(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: an approval recorded by someone not listed (past the CLI) runs the step.

    The runner checks the audited approver against the plan's terms before a Red step
    runs. Fixed by b39c386 ("one driver per run: ...; private, keyed state").
    """
    state = tmp_path / "state"
    halt(cli, workload(write, approval=", approvers: [alice]"), state)
    store = RunStore(state)
    [request] = store.approvals("pending")
    store.decide_approval(request, "approved", "mallory", "not asked")
    store.close()
    result = cli("resume", "r", "--state", str(state))
    assert shipped(state) == 0
    assert result.code == 2
    assert "'mallory' is not among the approvers of this step (alice)" in result.out


@pytest.mark.parametrize("where", ["policy", "rule"])
def test_the_runs_starter_cannot_approve_its_steps(
    cli: CliRunner,
    write: Writer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """Attack: the person who started the run approves its Red step herself.

    With `prevent_self_approval` (on the policy's approval, or on the deciding rule), the
    starter's name and login name are refused. Fixed by 3bd4f68 ("approve, deny: only a
    listed approver decides; the run's starter does not approve under
    prevent_self_approval"), the field added in b39c386.
    """
    state, login = tmp_path / "state", getpass.getuser()
    flag = ", prevent_self_approval: true"
    if where == "policy":
        path = workload(write, approval=flag)
    else:
        path = workload(write, rules=(SHIP_RULE % flag).replace("[bob]", f"[carol, dave, {login}]"))
    monkeypatch.setenv("LUMINAGUARD_USER", "carol")
    halt(cli, path, state)
    for who in ((), ("carol",), (login,)):
        code, text = _decide(cli, state, "approve", *who)
        assert code == 1 and "started this run and may not approve its steps" in text, who
    _nothing_decided(state)
    assert shipped(state) == 0
    assert _decide(cli, state, "approve", "dave")[0] == 0
    assert cli("resume", "r", "--state", str(state)).code == 0
    assert shipped(state) == 1

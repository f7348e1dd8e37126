"""``luminaguard policy replay``: a recorded run against a loosened and a tightened policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CliRunner, Writer

RULES = """\
    - {id: echo, match: {kind: run, command: {regex: '^echo '}}, risk: green, reason: prints}
    - {id: ls, match: {kind: run, command: {regex: '^ls '}}, risk: green, reason: lists}
"""
LOOSER = (
    "    - {id: touch, match: {kind: run, command: {glob: 'touch *'}}, risk: green, reason: t}\n"
)

WORKLOAD = """\
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec: {policy: p}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: hello, agent: a, run: "echo hello"}
    - {id: look, agent: a, run: "ls /work"}
    - {id: make, agent: a, run: "touch /work/y"}
    - {id: wipe, agent: a, run: "rm -rf /work/y"}
"""


def policy(rules: str) -> str:
    head = "apiVersion: luminaguard.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules:\n"
    return head + rules


@pytest.fixture
def recorded(cli: CliRunner, write: Writer, tmp_path: Path) -> Path:
    """A state folder whose audit log holds one run: two Green steps run, two Red halted."""
    write("run/policy.yaml", policy(RULES))
    write("run/workload.yaml", WORKLOAD)
    state = tmp_path / "state"
    result = cli("run", str(tmp_path / "run"), "--state", str(state), "--run-id", "r1")
    assert result.code == 3, result.out + result.err
    return state


@pytest.mark.usefixtures("sandbox")
def test_loosening_one_rule_lists_exactly_the_affected_actions(
    cli: CliRunner, write: Writer, tmp_path: Path, recorded: Path
) -> None:
    changed = write("changed/policy.yaml", policy(RULES + LOOSER))
    result = cli("policy", "replay", "--audit", str(recorded), str(changed))
    assert result.code == 1, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"replayed 4 distinct actions (4 audited decisions) from {recorded}"
    assert lines[1] == "Red -> Green (loosened, needs review): 1"
    assert lines[2] == "  r1/make: $ touch /work/y"
    assert lines[3].startswith("      was red by the default; now green by touch (")
    assert lines[4:] == ["Green -> Red (tightened): 0", "unchanged: 3"]
    allowed = cli("policy", "replay", "--audit", str(recorded), str(changed), "--allow-loosening")
    assert allowed.code == 0


@pytest.mark.usefixtures("sandbox")
def test_tightening_is_listed_and_passes(
    cli: CliRunner, write: Writer, tmp_path: Path, recorded: Path
) -> None:
    changed = write("changed/policy.yaml", policy(RULES.splitlines(keepends=True)[0]))
    result = cli("policy", "replay", "--audit", str(recorded), str(changed))
    assert result.code == 0, result.err
    assert "Red -> Green (loosened, needs review): 0" in result.out
    assert "Green -> Red (tightened): 1\n  r1/look: $ ls /work\n" in result.out
    assert "was green by ls; now red by the default" in result.out


@pytest.mark.usefixtures("sandbox")
def test_actions_of_policies_not_given_are_counted_not_replayed(
    cli: CliRunner, write: Writer, tmp_path: Path, recorded: Path
) -> None:
    other = write("other/policy.yaml", policy(RULES).replace("name: p}", "name: q}"))
    result = cli("policy", "replay", "--audit", str(recorded), str(other))
    assert result.code == 0
    assert "not replayed: 4 (policy 'p' not found in the paths given)" in result.out
    forced = cli("policy", "replay", "--audit", str(recorded), str(other), "--policy", "q")
    assert forced.code == 0 and "unchanged: 4" in forced.out


def test_a_folder_without_an_audit_log_is_a_usage_error(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    changed = write("changed/policy.yaml", policy(RULES))
    result = cli("policy", "replay", "--audit", str(tmp_path / "nowhere"), str(changed))
    assert result.code == 1 and "no audit log in" in result.err
    assert not (tmp_path / "nowhere").exists()

"""The plan is deterministic JSON whose hash follows meaning, not formatting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from luminaguard.compiler import compile_paths
from tests.conftest import FIXTURES, ROOT, CliRunner, Writer

GOOD = FIXTURES / "good"
BASE = (GOOD / "base.yaml").read_text()


def plan_hash(path: Path | str) -> str:
    _, plans = compile_paths([str(path)])
    return plans[0].hash


@pytest.mark.slow
@pytest.mark.integration  # two CLI processes
def test_plan_json_is_byte_identical_across_processes() -> None:
    command = [sys.executable, "-m", "luminaguard", "plan", "--json", "--workload", "repo-report"]
    command += ["examples/", "policies/"]
    runs = [
        subprocess.run(command, cwd=ROOT, capture_output=True, check=True).stdout for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert json.loads(runs[0])["hash"].startswith("sha256:")


def test_plan_json_snapshot(cli: CliRunner, snapshot: SnapshotAssertion) -> None:
    result = cli("plan", "--json", "good/base.yaml", cwd=FIXTURES)
    assert result.code == 0
    assert result.out == snapshot


def test_examples_plan_json_snapshot(cli: CliRunner, snapshot: SnapshotAssertion) -> None:
    result = cli("plan", "--json", "--workload", "repo-report", "examples/", "policies/")
    assert result.code == 0
    assert result.out == snapshot


def test_hash_ignores_formatting_comments_key_order_and_indentation() -> None:
    assert plan_hash(GOOD / "base.yaml") == plan_hash(GOOD / "reformatted.yaml")


def test_hash_ignores_the_file_name_and_folder(write: Writer) -> None:
    moved = write("elsewhere/deeper/renamed.yml", BASE)
    assert plan_hash(moved) == plan_hash(GOOD / "base.yaml")


def test_the_hash_covers_the_plan_content() -> None:
    _, plans = compile_paths([str(GOOD / "base.yaml")])
    assert plans[0].hash == plans[0].compute_hash()


SEMANTIC_EDITS = {
    "param default": ("limit: 10", "limit: 11"),
    "argument": ("recursive: true", "recursive: false"),
    "argument type": ("limit: 10", "limit: '10'"),
    "command": ('run: "echo {{ params.dir }}"', 'run: "echo  {{ params.dir }}"'),
    "rule order": (
        '    - id: read\n      match: {server: fs, tool: "read_*"}\n'
        "      risk: green\n      reason: reads\n",
        "",
    ),
    "rule reason": ("reason: echo is fine", "reason: echo is harmless"),
    "needs": ("      needs: [list]\n      run:", "      run:"),
    "server args": ("args: [/work]", "args: [/srv]"),
    "step id": ("id: show", "id: display"),
    "policy default": ("spec:\n  rules:", "spec:\n  default: green\n  rules:"),
}


@pytest.mark.parametrize("edit", sorted(SEMANTIC_EDITS))
def test_any_semantic_edit_changes_the_hash(edit: str, write: Writer) -> None:
    old, new = SEMANTIC_EDITS[edit]
    assert old in BASE
    edited = write("edited.yaml", BASE.replace(old, new, 1))
    assert plan_hash(edited) != plan_hash(GOOD / "base.yaml")


def test_param_override_changes_the_hash() -> None:
    _, plans = compile_paths([str(GOOD / "base.yaml")], "w", {"limit": 11})
    assert plans[0].hash != plan_hash(GOOD / "base.yaml")
    assert plans[0].params["limit"] == 11


@pytest.mark.parametrize("workload", ["hello", "repo-report", "research"])
def test_plan_round_trips_through_json(workload: str) -> None:
    from luminaguard.compiler import Plan

    _, plans = compile_paths([str(ROOT / "examples"), str(ROOT / "policies")], workload)
    again = Plan.model_validate_json(plans[0].to_json())
    assert again == plans[0]
    assert again.compute_hash() == plans[0].hash

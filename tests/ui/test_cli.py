"""The luminaguard command: subcommands, outputs, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from luminaguard.ui import exit_codes
from tests.conftest import FIXTURES, ROOT, CliRunner


def test_validate_examples_and_policies(cli: CliRunner) -> None:
    result = cli("validate", "examples/", "policies/")
    assert result.code == 0
    assert result.out.startswith("ok: 16 documents in 9 files")
    assert "5 workloads compiled" in result.out


def test_validate_workloads_with_policies(cli: CliRunner) -> None:
    assert cli("validate", "workloads/", "policies/").code == 0


def test_plan_table_snapshot(cli: CliRunner, snapshot: SnapshotAssertion) -> None:
    result = cli("plan", "examples/", "policies/")
    assert result.code == 0
    assert result.out == snapshot


def test_plan_table_shows_each_risk(cli: CliRunner) -> None:
    out = cli("plan", "--workload", "repo-report", "examples/", "policies/").out
    for text in (
        "GREEN",
        "RED",
        "AT RUN",
        "decided at run time",
        "starter/fs-write",
        "hash sha256:",
    ):
        assert text in out
    assert "5 steps: 3 green, 1 red (halt for approval), 1 decided at run time." in out


def test_plan_with_param(cli: CliRunner) -> None:
    result = cli(
        "plan", "--json", "--workload", "hello", "--param", "who=you", "examples/", "policies/"
    )
    plan = json.loads(result.out)
    assert plan["params"] == {"who": "you"}
    assert plan["steps"][0]["action"]["command"] == "echo hello, 'you'"


@pytest.mark.parametrize(
    ("pair", "value"), [("n=3", 3), ("n=[1, 2]", [1, 2]), ("n=a b", "a b"), ("n=", "")]
)
def test_param_values_are_json_or_text(pair: str, value: object) -> None:
    from luminaguard.ui.commands.plan import parse_params

    assert parse_params([pair]) == {"n": value}


def test_bad_param_syntax(cli: CliRunner) -> None:
    result = cli("plan", "--param", "novalue", "examples/", "policies/")
    assert result.code == 1 and "--param expects NAME=VALUE" in result.err


def test_json_needs_a_single_workload(cli: CliRunner) -> None:
    result = cli("plan", "--json", "examples/", "policies/")
    assert result.code == 1
    names = "hello, notes-digest, repo-report, repo-report-sandbox, research"
    assert f"choose one with --workload ({names})" in result.err


def test_no_workloads(cli: CliRunner) -> None:
    result = cli("plan", "policies/")
    assert result.code == 0 and "no workloads found" in result.out


def test_missing_path(cli: CliRunner) -> None:
    result = cli("validate", "nowhere/")
    assert (result.code, result.err) == (1, "error: no such file or directory: nowhere/\n")


def test_usage_errors_exit_1(cli: CliRunner) -> None:
    assert cli("frobnicate").code == 1
    assert cli("validate").code == 1


def test_help_and_version_exit_0(cli: CliRunner) -> None:
    assert cli("--version").code == 0
    assert cli("--help").code == 0


def test_schema_writes_files(cli: CliRunner, tmp_path: Path) -> None:
    result = cli("schema", "--out", str(tmp_path / "s"))
    assert result.code == 0
    assert (tmp_path / "s" / "workload.schema.json").is_file()


def test_internal_errors_are_reported_as_bugs(capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> int:
        raise ZeroDivisionError("boom")

    assert exit_codes.guarded(broken) == exit_codes.INTERNAL
    err = capsys.readouterr().err
    assert "internal error: this is a bug" in err and "ZeroDivisionError" in err


def test_interrupt_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert exit_codes.guarded(interrupted) == 130


@pytest.mark.integration  # the CLI as a child process
def test_python_dash_m(cli: CliRunner) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "luminaguard", "validate", str(FIXTURES / "good" / "base.yaml")],
        cwd=ROOT,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr

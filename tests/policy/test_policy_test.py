"""``luminaguard policy test``: failures with a diff, selection, coverage, JUnit and JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from tests.conftest import CliRunner, Writer

POLICY = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: reads, match: {tool: "read_*"}, risk: green, reason: reads only}
    - {id: tmp, match: {tool: write_file, args: {path: {path: "/tmp/**"}}}, risk: green,
       reason: scratch}
    - {id: never-tested, match: {kind: run}, risk: red, reason: shell}
"""

TESTS = """\
apiVersion: luminaguard.dev/v1
kind: PolicyTest
metadata: {name: suite}
spec:
  policy: p
  tests:
    - {name: a read, call: fs.read_file, args: {path: /x}, expect: {risk: green, rule: reads}}
    - {name: a scratch write, call: fs.write_file, args: {path: /tmp/a}, expect: green}
    - name: a real write
      call: fs.write_file
      args: {path: /etc/passwd}
      expect: {risk: red, rule: (default)}
"""


@pytest.fixture
def folder(write: Writer, tmp_path: Path) -> Path:
    write("p.yaml", POLICY)
    write("p.test.yaml", TESTS)
    return tmp_path


def test_passing_tests_exit_0_and_list_with_verbose(cli: CliRunner, folder: Path) -> None:
    result = cli("policy", "test", str(folder), "-v")
    assert result.code == 0, result.err
    assert result.out.count("PASS ") == 3 and "3 passed, 0 failed" in result.out
    assert f"PASS {folder}/p.test.yaml:7 suite/a read" in result.out


def test_a_failing_expectation_exits_1_with_a_diff(
    cli: CliRunner, folder: Path, snapshot: SnapshotAssertion
) -> None:
    tests = (folder / "p.test.yaml").read_text().replace("rule: reads}", "rule: tmp}")
    (folder / "p.test.yaml").write_text(
        tests.replace("path: /tmp/a}, expect: green", "path: /tmp/a}, expect: red")
    )
    result = cli("policy", "test", str(folder))
    assert result.code == 1
    assert result.out.replace(str(folder), "DIR") == snapshot


def test_run_selects_by_suite_and_name(cli: CliRunner, folder: Path) -> None:
    result = cli("policy", "test", str(folder), "--run", "suite/a (read|real)", "-v")
    assert result.code == 0 and "2 passed, 0 failed" in result.out
    assert "scratch" not in result.out


def test_run_matching_nothing_fails(cli: CliRunner, folder: Path) -> None:
    result = cli("policy", "test", str(folder), "--run", "nothing-like-this")
    assert result.code == 1
    assert "no policy tests match --run 'nothing-like-this'" in result.err


def test_no_test_files_at_all_fails(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    write("p.yaml", POLICY)
    result = cli("policy", "test", str(tmp_path))
    assert result.code == 1 and "no policy tests found" in result.err


def test_coverage_lists_rules_no_test_reached(cli: CliRunner, folder: Path) -> None:
    result = cli("policy", "test", str(folder), "--coverage")
    assert result.code == 0
    assert "coverage: p 2/3 rules (66.7%)" in result.out
    assert f"never decided a test: never-tested ({folder}/p.yaml:9)" in result.out


def test_coverage_below_the_threshold_fails(cli: CliRunner, folder: Path) -> None:
    result = cli("policy", "test", str(folder), "--fail-under", "80")
    assert result.code == 1
    assert "total coverage 66.7% (fail-under 80: FAILED)" in result.out
    assert cli("policy", "test", str(folder), "--fail-under", "60").code == 0


def test_junit_output_parses(cli: CliRunner, folder: Path) -> None:
    tests = (folder / "p.test.yaml").read_text()
    (folder / "p.test.yaml").write_text(tests.replace("rule: reads}", "rule: tmp}"))
    result = cli("policy", "test", str(folder), "--format", "junit")
    assert result.code == 1
    root = ET.fromstring(result.out)
    assert (root.tag, root.get("tests"), root.get("failures")) == ("testsuites", "3", "1")
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["a read", "a scratch write", "a real write"]
    [failed] = [c for c in cases if c.find("failure") is not None]
    failure = failed.find("failure")
    assert failure is not None
    assert (
        failure.get("message") == f"expected green by tmp, got green by reads ({folder}/p.yaml:6)"
    )
    assert (failed.get("file"), failed.get("line")) == (f"{folder}/p.test.yaml", "7")


def test_json_output(cli: CliRunner, folder: Path) -> None:
    result = cli("policy", "test", str(folder), "--format", "json")
    document = json.loads(result.out)
    assert (document["passed"], document["failed"]) == (3, 0)
    assert document["coverage"]["policies"][0]["uncovered"] == ["never-tested"]
    assert document["tests"][2]["actual"]["rule"] is None


def test_a_test_of_a_missing_policy_or_rule_is_a_located_error(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    write("p.yaml", POLICY)
    write("t.yaml", TESTS.replace("policy: p", "policy: q"))
    result = cli("policy", "test", str(tmp_path))
    assert result.code == 1 and "t.yaml:5:11: error: undefined Policy 'q'" in result.err
    write("t.yaml", TESTS.replace("rule: reads}", "rule: raeds}"))
    result = cli("policy", "test", str(tmp_path))
    assert "policy 'p' has no rule 'raeds'; did you mean 'reads'?" in result.err


def test_the_starter_policies_pass_their_own_tests_with_full_coverage(cli: CliRunner) -> None:
    result = cli("policy", "test", "policies", "--fail-under", "100")
    assert result.code == 0, result.out
    assert "0 failed" in result.out and "total coverage 100.0%" in result.out

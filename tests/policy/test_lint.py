"""``luminaguard policy lint``: shadowed rules, duplicate ids, tools no lock knows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from syrupy.assertion import SnapshotAssertion

from luminaguard.config.models import Match
from luminaguard.policy.engine import CompiledRule
from luminaguard.policy.lint import covers
from tests.conftest import CliRunner, Writer
from tests.policy.test_properties import actions, build, holds, matches

POLICY = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - id: fs-any-write
      match: {server: fs, tool: "write_*"}
      risk: red
      reason: writes
    - id: fs-scratch
      match:
        server: fs
        tool: write_file
        args: {path: {path: "/tmp/**"}}
      risk: green
      reason: scratch
    - id: reads
      match: {tool: [read_file, "list_*"]}
      risk: green
      reason: reads
    - id: read-one
      match: {server: [fs, git], tool: read_file}
      risk: green
      reason: reads one
    - id: list-in-tmp
      match: {tool: "list_*", args: {path: {glob: "/tmp/*"}}}
      risk: green
      reason: shadowed too, by reads, which names the same pattern without conditions
    - id: shell
      match: {kind: run}
      risk: red
      reason: not shadowed
"""


def test_a_shadowed_rule_is_an_error_naming_both_rules(
    cli: CliRunner, write: Writer, tmp_path: Path, snapshot: SnapshotAssertion
) -> None:
    write("p.yaml", POLICY)
    result = cli("policy", "lint", str(tmp_path), cwd=tmp_path)  # no lock file there
    assert result.code == 1
    assert result.out.replace(str(tmp_path), "DIR") == snapshot


def test_duplicate_ids_are_errors(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    write("p.yaml", POLICY.replace("id: read-one", "id: reads"))
    result = cli("policy", "lint", str(tmp_path))
    assert result.code == 1
    assert (
        f"{tmp_path}/p.yaml:21:11: error: duplicate rule id 'reads' "
        f"(first used at {tmp_path}/p.yaml:17:11)" in result.err
    )


def test_rules_about_tools_no_lock_knows_are_warnings(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    write("p.yaml", POLICY.split("    - id: fs-scratch")[0] + "    - id: mail\n"
          "      match: {tool: send_email}\n      risk: red\n      reason: mail\n")  # fmt: skip
    digest = "sha256:" + "0" * 64
    tool = {"annotations": {}, "description_sha256": digest, "input_schema_sha256": digest,
            "input_schema": {}}  # fmt: skip
    lock = {"version": 1, "servers": {"a/fs": {"tools": {"write_file": tool}}}}
    write("l.lock", json.dumps(lock))
    result = cli("policy", "lint", str(tmp_path), "--lock", str(tmp_path / "l.lock"))
    assert result.code == 0, result.err
    assert f"p.yaml:10:7: warning: rule 'mail' matches no tool in {tmp_path}/l.lock" in result.out
    assert "fs-any-write" not in result.out.split("\n1 policies")[0]


def test_the_starter_policies_lint_clean(cli: CliRunner) -> None:
    result = cli("policy", "lint", "policies")
    assert result.code == 0 and ": error:" not in result.out


@settings(max_examples=300, deadline=None)
@given(matches, matches, actions)
def test_covers_is_sound(wide: dict[str, Any], narrow: dict[str, Any], action: Any) -> None:
    """Whenever lint says a rule covers another, no action matches the second but not the first."""
    engine = build([(wide, "red"), (narrow, "green")])
    first: CompiledRule = engine.rules[0]
    second: CompiledRule = engine.rules[1]
    if covers(Match.model_validate(wide), Match.model_validate(narrow)) and holds(second, action):
        assert holds(first, action)


def test_covers_finds_the_plain_cases() -> None:
    def m(**kwargs: Any) -> Match:
        return Match.model_validate(kwargs)

    assert covers(m(), m(kind="run"))
    assert covers(m(tool="*"), m(server="x", tool="y"))
    assert covers(m(server=["a", "b"]), m(server="a", tool="t"))
    assert not covers(m(server="a"), m(tool="t"))
    assert not covers(m(kind="run"), m(tool="t"))
    assert not covers(m(annotations={"readOnlyHint": True}), m(tool="t"))
    assert covers(
        m(annotations={"readOnlyHint": True}), m(annotations={"readOnlyHint": True}, tool="t")
    )

"""``policy explain --lock``: a call decided on its tool's locked annotations, as in the plan.

Failed before ``--lock`` existed: ``explain`` said Red (the readOnlyHint default counts
against) where ``plan`` said Green for the same call.
"""

from __future__ import annotations

import json
from pathlib import Path

from luminaguard.compiler import compile_paths
from luminaguard.compiler.lock import LockedServer, LockedTool, ToolLock
from tests.conftest import CliRunner

DOCS = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - id: reads
      match: {server: docs, annotations: {readOnlyHint: true}}
      risk: green
      reason: the tool only reads
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  mcp_servers:
    docs: {url: "http://127.0.0.1:9/never-reached"}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: look, agent: a, call: docs.search, args: {q: x}}
"""
CALL = "{call: docs.search, args: {q: x}}"


def lock(annotations: dict[str, bool]) -> str:
    tool = LockedTool(
        annotations=annotations,
        description_sha256="0" * 64,
        input_schema_sha256="0" * 64,
        input_schema={"type": "object"},
    )
    return ToolLock(servers={"a/docs": LockedServer(tools={"search": tool})}).to_json()


def explain(cli: CliRunner, folder: Path, *extra: str) -> str:
    result = cli("policy", "explain", "--policy", "p", "--path", str(folder), *extra, CALL)
    assert result.code == 0, result.err
    return result.out.splitlines()[-1]


def test_explain_with_the_lock_decides_as_the_plan(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(DOCS)
    lock_file = tmp_path / "luminaguard.lock"
    lock_file.write_text(lock({"readOnlyHint": True}))
    _, [plan] = compile_paths(
        [str(tmp_path / "w.yaml")], lock=ToolLock.model_validate_json(lock_file.read_text())
    )
    [step] = plan.steps
    assert step.decision is not None
    assert (step.decision.risk, step.decision.rule) == ("green", "reads")
    assert "RED" in explain(cli, tmp_path).upper()  # no lock here: the default counts against
    shown = explain(cli, tmp_path, "--lock", str(lock_file))
    assert shown.startswith("decision: ") and "GREEN" in shown.upper() and "reads" in shown
    # ./luminaguard.lock is the default, as for the other commands
    result = cli("policy", "explain", "--policy", "p", "--path", str(tmp_path), CALL, cwd=tmp_path)
    assert "GREEN" in result.out.splitlines()[-1].upper()
    assert json.loads(lock_file.read_text())["servers"]["a/docs"]


def test_agents_that_lock_the_tool_differently_must_be_chosen(
    cli: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "w.yaml").write_text(
        DOCS + "---\n" + DOCS.split("---\n")[1].replace("{name: a}", "{name: b}")
    )
    both = json.loads(lock({"readOnlyHint": True}))
    both["servers"]["b/docs"] = json.loads(lock({"readOnlyHint": False}))["servers"]["a/docs"]
    lock_file = tmp_path / "two.lock"
    lock_file.write_text(json.dumps(both))
    base = ("policy", "explain", "--policy", "p", "--path", str(tmp_path), "--lock", str(lock_file))
    result = cli(*base, CALL)
    assert result.code == 1 and "--agent" in result.err
    assert "GREEN" in explain(cli, tmp_path, "--lock", str(lock_file), "--agent", "a").upper()
    assert "RED" in explain(cli, tmp_path, "--lock", str(lock_file), "--agent", "b").upper()

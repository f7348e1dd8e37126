"""Real, unmodified npm MCP servers inside the sandbox: annotations, results, errors, the lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from luminaguard.compiler import compile_paths
from luminaguard.compiler.lock import ToolLock, load_lock
from luminaguard.config.diagnostics import ConfigError
from luminaguard.scheduler.store import RunStore
from tests.conftest import ROOT, CliRunner, Writer

pytestmark = pytest.mark.usefixtures("npm_servers")

AGENT = f"""\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {{name: hints}}
spec:
  rules:
    - id: read-only
      match: {{annotations: {{readOnlyHint: true}}}}
      risk: green
      reason: the lock says the tool is read-only
    - id: fs-scratch
      match:
        server: fs
        tool: [write_file, create_directory]
        args: {{path: {{path: "/work/**"}}}}
      risk: green
      reason: the agent's own work folder
    - id: memory
      match: {{server: mem}}
      risk: green
      reason: private memory
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {{name: a}}
spec:
  policy: hints
  mounts: [{{source: {ROOT / "mcp-servers"}, target: /opt/mcp}}]
  mcp_servers:
    fs: {{command: /opt/mcp/node_modules/.bin/mcp-server-filesystem, args: [/work]}}
    mem:
      command: /opt/mcp/node_modules/.bin/mcp-server-memory
      env: {{MEMORY_FILE_PATH: /work/memory.jsonl}}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {{name: w}}
spec:
  steps:
"""


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, npm_servers: Path) -> tuple[Path, Path]:
    """The agent's folder and a lock written by `luminaguard lock` against the real servers."""
    from luminaguard.ui.cli import main

    folder = tmp_path_factory.mktemp("mcp")
    (folder / "agent.yaml").write_text(
        AGENT + "    - {id: noop, agent: a, call: fs.list_allowed_directories}\n"
    )
    lock = folder / "luminaguard.lock"
    assert main(["lock", str(folder / "agent.yaml"), "--lock", str(lock)]) == 0
    return folder, lock


def plan_for(write: Writer, steps: str, lock: ToolLock | None) -> dict[str, tuple[str, str | None]]:
    path = write("w.yaml", AGENT + steps)
    _, plans = compile_paths([str(path)], lock=lock)
    return {s.id: (s.risk, s.decision.rule if s.decision else None) for s in plans[0].steps}


STEPS = """\
    - {id: read, agent: a, call: fs.read_text_file, args: {path: /work/x}}
    - {id: tree, agent: a, call: fs.directory_tree, args: {path: /work}}
    - {id: write, agent: a, call: fs.write_file, args: {path: /etc/x, content: x}}
    - {id: edit, agent: a, call: fs.edit_file, args: {path: /work/x, edits: []}}
    - {id: move, agent: a, call: fs.move_file, args: {source: /work/a, destination: /work/b}}
"""


def test_lock_pins_both_servers(locked: tuple[Path, Path]) -> None:
    lock = load_lock(locked[1])
    fs, mem = lock.servers["a/fs"], lock.servers["a/mem"]
    assert fs.tools["read_text_file"].annotations == {"openWorldHint": False, "readOnlyHint": True}
    assert fs.tools["write_file"].annotations["destructiveHint"] is True
    assert {"create_entities", "search_nodes", "read_graph"} <= set(mem.tools)


def test_annotations_from_the_lock_decide_in_the_plan(
    locked: tuple[Path, Path], write: Writer
) -> None:
    decided = plan_for(write, STEPS, load_lock(locked[1]))
    assert decided["read"] == ("green", "read-only") and decided["tree"] == ("green", "read-only")
    for step in ("write", "edit", "move"):
        assert decided[step] == ("red", None), step


def test_without_a_lock_annotations_count_against_the_tool(write: Writer) -> None:
    decided = plan_for(write, STEPS, None)
    assert decided["read"] == ("red", None)  # unknown tool: not read-only


def test_a_call_to_a_tool_not_in_the_lock_is_a_compile_error(
    locked: tuple[Path, Path], write: Writer
) -> None:
    steps = "    - {id: gone, agent: a, call: fs.delete_file, args: {path: /work/x}}\n"
    with pytest.raises(ConfigError) as caught:
        plan_for(write, steps, load_lock(locked[1]))
    [problem] = caught.value.diagnostics
    assert (problem.location.line, problem.location.column) == (len(AGENT.splitlines()) + 1, 34)
    assert "server 'fs' of agent 'a' has no tool 'delete_file' in the lock" in problem.message


def test_arguments_the_schema_rejects_are_a_compile_error(
    locked: tuple[Path, Path], write: Writer
) -> None:
    steps = "    - {id: bad, agent: a, call: fs.read_text_file, args: {path: 3}}\n"
    with pytest.raises(ConfigError) as caught:
        plan_for(write, steps, load_lock(locked[1]))
    assert [d.message for d in caught.value.diagnostics] == ["args.path: 3 is not of type 'string'"]


def run_steps(
    cli: CliRunner, write: Writer, tmp_path: Path, steps: str, lock: Path
) -> tuple[int, RunStore]:
    path = write("w.yaml", AGENT + steps)
    state = tmp_path / "state"
    code = cli("run", str(path), "--state", str(state), "--run-id", "r", "--lock", str(lock)).code
    return code, RunStore(state)


def test_tools_run_in_the_sandbox_and_results_flow(
    cli: CliRunner, write: Writer, tmp_path: Path, locked: tuple[Path, Path]
) -> None:
    steps = """\
    - {id: mkdir, agent: a, call: fs.create_directory, args: {path: /work/out}}
    - id: write
      agent: a
      call: fs.write_file
      args: {path: /work/out/a.txt, content: hello}
      needs: [mkdir]
    - {id: read, agent: a, call: fs.read_text_file, args: {path: /work/out/a.txt}, needs: [write]}
    - id: remember
      agent: a
      call: mem.create_entities
      needs: [read]
      args:
        entities:
          - {name: greeting, entityType: note, observations: ["{{ steps.read.outputs.text }}"]}
    - {id: recall, agent: a, call: mem.search_nodes, args: {query: greeting}, needs: [remember]}
"""
    code, store = run_steps(cli, write, tmp_path, steps, locked[1])
    assert code == 0
    outputs = {k: v.outputs for k, v in store.steps("r").items()}
    assert outputs["read"]["text"] == "hello" and outputs["read"]["is_error"] is False
    assert "hello" in json.dumps(outputs["recall"]["structured"] or outputs["recall"]["text"])
    work = tmp_path / "state" / "runs" / "r" / "agents" / "a" / "work"
    assert (work / "out" / "a.txt").read_text() == "hello"
    assert "greeting" in (work / "memory.jsonl").read_text()


def test_a_write_outside_the_allowed_folder_fails_with_the_servers_message(
    cli: CliRunner, write: Writer, tmp_path: Path, locked: tuple[Path, Path]
) -> None:
    steps = "    - {id: escape, agent: a, call: fs.read_text_file, args: {path: /etc/passwd}}\n"
    code, store = run_steps(cli, write, tmp_path, steps, locked[1])
    assert code == 2
    record = store.steps("r")["escape"]
    assert record.state == "failed" and record.outputs["is_error"] is True
    assert "Access denied - path outside allowed directories" in (record.error or "")


def tampered(lock_path: Path, tmp_path: Path, tool: str, change: dict[str, object]) -> Path:
    data = json.loads(lock_path.read_text())
    data["servers"]["a/fs"]["tools"][tool].update(change)
    path = tmp_path / "tampered.lock"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"annotations": {"readOnlyHint": True, "openWorldHint": True}}, "annotations changed"),
        ({"description_sha256": "sha256:" + "0" * 64}, "description changed"),
    ],
)
def test_a_tool_that_changed_since_the_lock_is_red_at_run_time(
    cli: CliRunner,
    write: Writer,
    tmp_path: Path,
    locked: tuple[Path, Path],
    change: dict[str, object],
    what: str,
) -> None:
    lock = tampered(locked[1], tmp_path, "list_allowed_directories", change)
    steps = "    - {id: dirs, agent: a, call: fs.list_allowed_directories}\n"
    path = write("w.yaml", AGENT + steps)
    _, plans = compile_paths([str(path)], lock=load_lock(lock))
    assert plans[0].steps[0].risk == "green"  # the lock says read-only
    code, store = run_steps(cli, write, tmp_path, steps, lock)
    assert code == 3
    [request] = store.approvals("pending")
    assert request.card["rule"] == "tool-changed-since-lock"
    assert what in request.card["reason"]
    assert store.steps("r")["dirs"].attempts == 0


def test_lock_check_fails_on_a_changed_tool(
    cli: CliRunner, tmp_path: Path, locked: tuple[Path, Path]
) -> None:
    folder, lock_path = locked
    assert cli("lock", "--check", str(folder / "agent.yaml"), "--lock", str(lock_path)).code == 0
    bad = tampered(
        lock_path, tmp_path, "read_text_file", {"input_schema_sha256": "sha256:" + "1" * 64}
    )
    result = cli("lock", "--check", str(folder / "agent.yaml"), "--lock", str(bad))
    assert result.code == 1
    assert "a/fs: tool 'read_text_file': input schema changed" in result.out


def test_repository_lock_is_current(cli: CliRunner) -> None:
    result = cli("lock", "--check", "examples/05-mcp-tools", "policies/")
    assert result.code == 0, result.out


def test_example_workload_runs(cli: CliRunner, tmp_path: Path) -> None:
    state = str(tmp_path / "s")
    assert (
        cli("run", "examples/05-mcp-tools", "policies/", "--state", state, "--run-id", "n").code
        == 3
    )
    assert cli("approve", "n", "publish", "--state", state).code == 0
    assert cli("resume", "n", "--state", state).code == 0
    digest = Path(state, "runs", "n", "agents", "librarian", "work", "digest.md").read_text()
    assert "renew the TLS certificate" in digest

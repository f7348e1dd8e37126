"""Call steps on a fake MCP client: results flow to outputs; transport errors fail the step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from luminaguard.hypervisor.fake import Outcome
from luminaguard.transport.base import ToolInfo, ToolResult, TransportError
from tests.scheduler.harness import Harness, compile_steps

STEPS = """\
    - {id: ask, agent: a, call: tools.lookup, args: {key: colour}, timeout: 5s}
    - {id: use, agent: a, run: "echo {{ steps.ask.outputs.text }}", needs: [ask]}
"""
LOOKUP = ToolInfo("lookup", "Look a key up.", {"type": "object"}, {"readOnlyHint": True})


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    found = Harness(tmp_path / "state")
    found.tools.tools = [LOOKUP]
    yield found
    found.store.close()


def _answer(arguments: dict[str, Any]) -> ToolResult:
    return ToolResult(text=f"{arguments['key']}=blue", structured={"value": "blue"})


def test_a_call_result_flows_to_later_steps(harness: Harness, tmp_path: Path) -> None:
    harness.tools.on("lookup", _answer)
    harness.backend.on("echo 'colour=blue'", Outcome(stdout="colour=blue\n"))
    assert harness.start(compile_steps(tmp_path, STEPS)).state == "succeeded"
    [call] = harness.tools.calls
    assert (call.name, call.arguments, call.timeout) == ("lookup", {"key": "colour"}, 5.0)
    outputs = harness.store.steps("r")["ask"].outputs
    assert outputs == {
        "text": "colour=blue",
        "structured": {"value": "blue"},
        "is_error": False,
        "files": [],
        "dropped": [],
    }
    assert harness.backend.commands == ["echo 'colour=blue'"]
    assert harness.tools.closed  # the run ended its sessions


def test_a_transport_error_fails_the_call_and_skips_its_dependents(
    harness: Harness, tmp_path: Path
) -> None:
    harness.tools.on("lookup", TransportError("MCP server 'a/tools' went away"))
    assert harness.start(compile_steps(tmp_path, STEPS)).state == "failed"
    steps = harness.store.steps("r")
    assert (steps["ask"].state, steps["ask"].error) == ("failed", "MCP server 'a/tools' went away")
    assert steps["use"].state == "skipped"
    assert harness.backend.commands == []


def test_a_tool_error_result_fails_the_step(harness: Harness, tmp_path: Path) -> None:
    harness.tools.on("lookup", ToolResult(text="no such key", is_error=True))
    assert harness.start(compile_steps(tmp_path, STEPS)).state == "failed"
    ask = harness.store.steps("r")["ask"]
    assert (ask.state, ask.error) == ("failed", "tool error: no such key")
    assert ask.outputs["is_error"] is True


def test_a_tool_the_server_does_not_offer_fails_the_step(harness: Harness, tmp_path: Path) -> None:
    harness.tools.tools = []
    assert harness.start(compile_steps(tmp_path, STEPS)).state == "failed"
    error = harness.store.steps("r")["ask"].error
    assert error == "MCP server 'tools' has no tool 'lookup'"
    assert harness.tools.calls == []

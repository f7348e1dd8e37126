"""A real stdio MCP server (the SDK's, inside the namespace sandbox) that exits mid-call:
an idempotent step is retried on a restarted server; any other step fails, clearly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from luminaguard.compiler import compile_paths
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from luminaguard.scheduler import tools
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.store import RunStore, StepRecord
from tests.conftest import Writer
from tests.integration import ask_server

pytestmark = pytest.mark.usefixtures("sandbox")

DOCS = ask_server.documents("c", "crash.py")


def run(write: Writer, tmp_path: Path, steps: str) -> dict[str, StepRecord]:
    """Run the steps on the real backend; every step's record."""
    path = write("w.yaml", DOCS + steps)
    _, plans = compile_paths([str(path)])
    store = RunStore(tmp_path / "state")
    try:
        asyncio.run(Runner(store, SandboxBackend()).start(plans[0], "r"))
        return store.steps("r")
    finally:
        store.close()


def test_an_idempotent_call_is_retried_on_a_restarted_server(write: Writer, tmp_path: Path) -> None:
    steps = """\
    - {id: s, agent: a, call: c.once, args: {text: hello}, idempotent: true, retries: 2}
"""
    record = run(write, tmp_path, steps)["s"]
    assert (record.state, record.error) == ("succeeded", None)
    assert record.outputs["text"] == "hello"
    assert (tmp_path / "state/runs/r/agents/a/work/.crashed").exists()  # it did crash once


def test_a_call_that_is_not_idempotent_fails_when_the_server_stops(
    write: Writer, tmp_path: Path
) -> None:
    steps = "    - {id: s, agent: a, call: c.once, args: {text: hello}}\n"
    record = run(write, tmp_path, steps)["s"]
    assert record.state == "failed"
    assert "MCP server 'a/c': tools/call once failed (the server stopped)" in (record.error or "")
    assert "not retried: it may have taken effect" in (record.error or "")


def test_a_server_that_keeps_stopping_is_restarted_a_bounded_number_of_times(
    write: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tools, "MAX_RESTARTS", 1)
    steps = """\
    - {id: s, agent: a, call: c.always, args: {text: x}, idempotent: true, retries: 3}
"""
    record = run(write, tmp_path, steps)["s"]
    assert record.state == "failed"
    assert "MCP server 'a/c' stopped again after 1 restarts; it is not started again" in (
        record.error or ""
    )

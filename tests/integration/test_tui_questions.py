"""A real MCP server (tests/fixtures/servers/ask.py, in the namespace sandbox) asks; the
approval queue (``luminaguard approve`` on a terminal, driven by Textual's pilot in the
run's event loop) answers; the server receives exactly that answer."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot

from luminaguard.compiler import Plan, compile_paths
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.store import RunStore
from luminaguard.ui.tui import ApprovalApp
from tests.conftest import Writer
from tests.integration.test_questions import DOCS, told

pytestmark = pytest.mark.usefixtures("sandbox")

MESSAGE = "Deploy \\u001b[2J [b]where[/b]?"  # as YAML writes it: an escape sequence
STEPS = f'    - {{id: who, agent: a, call: q.ask, args: {{message: "{MESSAGE}"}}}}\n'


def drive(write: Writer, tmp_path: Path, steps: str) -> tuple[RunStore, Runner, Plan]:
    """The run's store, its runner and its plan (test_questions' documents)."""
    docs = DOCS.replace("{timeout}", "60s")
    _, plans = compile_paths([str(write("w.yaml", docs + steps))])
    store = RunStore(tmp_path / "state")
    return store, Runner(store, SandboxBackend()), plans[0]


def shown(app: ApprovalApp) -> str:
    console = Console(file=io.StringIO(), width=200, record=True)
    console.print(app.card.content)
    return console.export_text()


def shown_status(app: ApprovalApp) -> str:
    return str(app.status.content)


async def first_question(app: ApprovalApp, pilot: Pilot[None], run: asyncio.Task[Any]) -> None:
    """Let the app's poll run until the run's question is listed (or the run ends without)."""
    while not app.questions:
        if run.done():
            raise AssertionError(f"the run ended without asking: {run.result()}")
        await pilot.pause(0.05)


def test_the_queue_answers_a_real_server_s_question(write: Writer, tmp_path: Path) -> None:
    store, runner, plan = drive(write, tmp_path, STEPS)
    queue_store = RunStore(tmp_path / "state")  # the queue's own connection, as `approve`'s

    async def scenario() -> None:
        run = asyncio.create_task(runner.start(plan, "r"))
        app = ApprovalApp(queue_store, "erin", poll=0.05)
        async with app.run_test(size=(100, 40)) as pilot:
            await first_question(app, pilot, run)
            card = shown(app)
            assert "from a/q" in card and "Deploy \\x1b[2J [b]where[/b]?" in card
            await pilot.press("enter", *"Ada Lovelace", "tab", "7")  # name, count
            await pilot.press("tab", "enter", "down", "enter")  # colour: red
            await pilot.press("tab", "space", "escape", "a")  # sure; back; answer
            assert app.questions == []
            assert "answered by erin" in shown_status(app)
        result = await run
        assert result.state == "succeeded"

    try:
        asyncio.run(scenario())
        content = {"colour": "red", "count": 7, "name": "Ada Lovelace", "sure": True}
        assert told(store, "who") == {"action": "accept", "content": content}
        [answered] = store.audit.records("r", "who", "question.answered")
        assert answered.data["who"] == "erin" and answered.data["content"] == content
    finally:
        queue_store.close()
        store.close()

"""The Server's watcher: a decision another process records as the server starts is seen."""

from __future__ import annotations

import asyncio
from pathlib import Path

from luminaguard.scheduler.states import RunState
from luminaguard.server.service import Server
from tests.scheduler.harness import Harness, compile_steps, connector
from tests.server.test_engine_decisions import STEPS, approve_elsewhere, engine_of, until


def test_an_approval_recorded_as_the_server_starts_is_acted_on(tmp_path: Path) -> None:
    """Recorded once the engine looked at the runs, before the loop ran anything else."""
    harness = Harness(tmp_path / "state")
    plan = compile_steps(tmp_path, STEPS)

    async def halt() -> None:
        engine = engine_of(harness)
        await engine.start()
        engine.submit(plan, "r", "fake", {"name": "someone"})
        await until("the run to halt", lambda: not engine.drives)
        await engine.stop(1)

    async def serve() -> None:
        server = Server(
            harness.store,
            backend="fake",
            backends={"fake": harness.backend},
            environ=harness.environ,
            connector=connector({"a/tools": harness.tools}),
        )
        await server.start()
        approve_elsewhere(harness.state, "red")  # the watcher must be watching already
        try:
            await until(
                "the run to succeed",
                lambda: harness.store.run_states()["r"] is RunState.SUCCEEDED,
                limit=15,
            )
        finally:
            await server.stop(1)

    asyncio.run(halt())
    assert harness.store.run_states()["r"] is RunState.HALTED
    asyncio.run(serve())

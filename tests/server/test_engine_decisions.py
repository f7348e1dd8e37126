"""The server's Engine on the fake backend: decisions made elsewhere are never lost.

A decision is often recorded by another process (``luminaguard approve``) whose write
the server notices later, through the folder's watcher: here the test plays the other
process (its own ``RunStore``) and the watcher (``engine.poke()``), at the worst times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from luminaguard.hypervisor.fake import Outcome
from luminaguard.scheduler import decisions
from luminaguard.scheduler.states import RunState, StateError
from luminaguard.scheduler.store import RunStore
from luminaguard.server.engine import Engine
from tests.scheduler.harness import Harness, compile_steps, connector

STEPS = """\
    - {id: slow, agent: a, run: "echo slow >> /work/slow.log"}
    - {id: red, agent: a, run: "rm -rf /work/old"}
    - {id: last, agent: a, run: "echo last", needs: [slow, red]}
"""


def engine_of(harness: Harness) -> Engine:
    harness.backend.on(lambda command: True, Outcome())  # after the test's own rules
    return Engine(
        harness.store,
        lambda name: harness.backend,
        environ=harness.environ,
        connector=connector({"a/tools": harness.tools}),
    )


async def until(what: str, check: Callable[[], object], limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {limit}s"
        await asyncio.sleep(0.01)


def approve_elsewhere(state: Path, step_id: str) -> None:
    """What ``luminaguard approve`` does, in another process: its own connection."""
    other = RunStore(state)
    try:
        decisions.approve(other, "r", step_id, "alice", "from the CLI")
    finally:
        other.close()


def test_an_approval_recorded_while_the_run_is_driven_is_acted_on(tmp_path: Path) -> None:
    """Approved after the step halted but before the drive ended, noticed after it ended."""
    harness = Harness(tmp_path / "state")
    plan = compile_steps(tmp_path, STEPS)

    async def scenario() -> None:
        release = asyncio.Event()
        harness.backend.on("echo slow >> /work/slow.log", Outcome(until=release.wait))
        engine = engine_of(harness)
        await engine.start()
        engine.submit(plan, "r", "fake", {"name": "someone"})
        # red halted on its request while slow still runs: the drive goes on
        await until("red's request", lambda: harness.store.approvals("pending", "r"))
        approve_elsewhere(harness.state, "red")
        release.set()
        await until("the drive to end", lambda: not engine.drives)
        engine.poke()  # the watcher's notice of the approval comes after the drive ended
        await until(
            "the run to succeed",
            lambda: harness.store.run_states()["r"] is RunState.SUCCEEDED,
            limit=10,
        )
        await engine.stop(1)

    asyncio.run(scenario())
    assert harness.states() == {
        "slow": ("succeeded", 1),
        "red": ("succeeded", 1),
        "last": ("succeeded", 1),
    }


def test_an_approval_recorded_while_no_server_ran_is_acted_on_at_start(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "state")
    plan = compile_steps(tmp_path, STEPS)

    async def first_server() -> None:
        engine = engine_of(harness)
        await engine.start()
        engine.submit(plan, "r", "fake", {"name": "someone"})
        await until("the run to halt", lambda: not engine.drives)
        assert harness.store.run_states()["r"] is RunState.HALTED
        await engine.stop(1)

    async def second_server() -> None:
        engine = engine_of(harness)
        await engine.start()  # nobody asks anything: the approval is enough
        await until(
            "the run to succeed",
            lambda: harness.store.run_states()["r"] is RunState.SUCCEEDED,
            limit=10,
        )
        await engine.stop(1)

    asyncio.run(first_server())
    approve_elsewhere(harness.state, "red")
    asyncio.run(second_server())
    assert harness.states()["red"] == ("succeeded", 1)


def test_a_halted_run_nobody_decided_about_is_not_driven_at_start(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "state")
    plan = compile_steps(tmp_path, STEPS)

    async def serve_twice() -> int:
        engine = engine_of(harness)
        await engine.start()
        engine.submit(plan, "r", "fake", {"name": "someone"})
        await until("the run to halt", lambda: not engine.drives)
        await engine.stop(1)
        records = harness.store.audit.count()
        again = engine_of(harness)
        await again.start()
        assert not again.drives  # nothing to act on: not driven (no audit records)
        again.poke()
        assert not again.drives
        await again.stop(1)
        return harness.store.audit.count() - records

    assert asyncio.run(serve_twice()) == 0
    assert harness.store.run_states()["r"] is RunState.HALTED


def test_a_run_asked_for_while_it_is_cancelled_stays_cancelled(tmp_path: Path) -> None:
    """An approval, an expiry or a write elsewhere asks for the run during its cancel."""
    harness = Harness(tmp_path / "state")
    plan = compile_steps(tmp_path, STEPS)

    async def scenario() -> None:
        harness.backend.on("echo slow >> /work/slow.log", Outcome(until=asyncio.Event().wait))
        engine = engine_of(harness)
        await engine.start()
        engine.submit(plan, "r", "fake", {"name": "someone"})
        await until("slow to run", lambda: harness.states()["slow"][0] == "running")
        cancelling = asyncio.ensure_future(engine.cancel("r", "bob"))
        await asyncio.sleep(0)  # the cancel waits for the drive to end...
        engine.schedule("r")  # ...when something asks for the run
        await cancelling  # no LeaseHeld: the cancel took the run's lease
        await until("no drive", lambda: not engine.drives)
        await engine.stop(1)

    asyncio.run(scenario())
    assert harness.store.run_states()["r"] is RunState.FAILED
    assert harness.states() == {
        "slow": ("failed", 1),
        "red": ("denied", 0),
        "last": ("skipped", 0),
    }


def test_a_drive_cancelled_before_it_started_leaves_no_trace(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "state")
    plan = compile_steps(tmp_path, STEPS)

    async def scenario() -> None:
        engine = engine_of(harness)
        await engine.start()
        engine.submit(plan, "r", "fake", {"name": "someone"})
        await until("the run to halt", lambda: not engine.drives)
        engine.schedule("r")  # an approval asks for a drive...
        await engine.cancel("r", "bob")  # ...cancelled before the loop started it
        assert not engine.drives
        stopping = asyncio.ensure_future(engine.stop(30))
        await asyncio.wait_for(stopping, 5)  # not the whole grace period: nothing runs

    asyncio.run(scenario())
    assert harness.store.run_states()["r"] is RunState.FAILED


def test_a_decision_names_the_action_it_decides(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "state")
    assert harness.start(compile_steps(tmp_path, STEPS), "r").state == "halted"
    [request] = harness.store.approvals("pending", "r")
    for decide in (decisions.approve, decisions.deny):
        with pytest.raises(StateError, match="no pending request for action sha256:other"):
            decide(harness.store, "r", "red", "alice", None, action_hash="sha256:other")
    assert [r.state for r in harness.store.approvals(None, "r")] == ["pending"]  # untouched
    done = decisions.approve(
        harness.store, "r", "red", "alice", None, action_hash=request.action_hash
    )
    assert done.action_hash == request.action_hash

"""The server's Engine on the fake backend: runs driven, halted, resumed, expired,
cancelled, drained; slots shared by runs; a lease held elsewhere.

In-process (asyncio), on a real RunStore under tmp_path; nothing is started. Waits are
on conditions (a drive ending, a step entering its command), never on fixed times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from luminaguard.compiler import Plan
from luminaguard.errors import LuminaGuardError, UsageError
from luminaguard.hypervisor.base import Backend
from luminaguard.hypervisor.fake import Outcome
from luminaguard.scheduler import decisions
from luminaguard.scheduler.sandboxes import absolute_plan
from luminaguard.scheduler.states import ApprovalState, RunState, StepState
from luminaguard.scheduler.store import RunStore
from luminaguard.server.engine import Engine
from tests.scheduler.harness import Harness, compile_steps, connector

STARTER = {"name": "submitter", "via": "api"}
SHIP = "cp /work/data.txt /work/shipped.txt"
RED = f"""\
    - {{id: make, agent: a, run: "echo data > /work/data.txt"}}
    - {{id: ship, agent: a, run: "{SHIP}", needs: [make]}}
    - {{id: after, agent: a, run: "cat /work/shipped.txt", needs: [ship]}}
"""
TWO = """\
    - {id: one, agent: a, run: "echo one"}
    - {id: two, agent: a, run: "echo two", needs: [one]}
"""
#: How long a condition may take to come true on a busy machine before a test fails.
PATIENCE = 30.0


class Gate:
    """What a scripted command waits on: counts who entered, lets them go when opened."""

    def __init__(self) -> None:
        self.entered = 0
        self.opened = asyncio.Event()
        self._changed = asyncio.Event()

    async def __call__(self) -> None:
        self.entered += 1
        self._changed.set()
        await self.opened.wait()

    async def reached(self, count: int) -> None:
        """Wait until ``count`` commands have entered."""
        async with asyncio.timeout(PATIENCE):
            while self.entered < count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    found = Harness(tmp_path / "state")
    found.backend.on("echo data > /work/data.txt")
    found.backend.on(SHIP)
    found.backend.on("cat /work/shipped.txt", Outcome(stdout="data\n"))
    yield found
    found.store.close()


def two_steps(harness: Harness, folder: Path, gate: Gate | None = None) -> Plan:
    """The plan of TWO; its first command waits on ``gate`` the first time, if given."""
    if gate is not None:
        harness.backend.on("echo one", Outcome(stdout="one\n", until=gate), times=1)
    harness.backend.on("echo one", Outcome(stdout="one\n"))
    harness.backend.on("echo two", Outcome(stdout="two\n"))
    return compile_steps(folder, TWO)


def engine_of(harness: Harness, **options: object) -> Engine:
    """An engine on the harness's store and fakes; backend ``fake`` is the fake backend."""

    def backends(name: str) -> Backend:
        if name != "fake":
            raise UsageError(f"unknown backend {name!r}")
        return harness.backend

    return Engine(
        harness.store,
        backends,
        clock=harness.clock,
        environ=harness.environ,
        connector=connector({"a/tools": harness.tools}),
        **options,  # type: ignore[arg-type]
    )


async def settled(engine: Engine) -> None:
    """Wait until no run is being driven (drives scheduled meanwhile included)."""
    async with asyncio.timeout(PATIENCE):
        while engine.drives:
            await asyncio.gather(*list(engine.drives.values()), return_exceptions=True)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def state(harness: Harness, run_id: str = "r") -> RunState:
    return harness.store.run(run_id).state


def steps(harness: Harness, run_id: str = "r") -> dict[str, StepState]:
    return {k: v.state for k, v in harness.store.steps(run_id).items()}


def verified(harness: Harness) -> None:
    assert harness.store.audit.verify() == []


def test_a_submitted_run_is_driven_to_success(harness: Harness, tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = engine_of(harness)
        await engine.start()
        engine.submit(two_steps(harness, tmp_path), "r", "fake", STARTER)
        await settled(engine)
        await engine.stop(grace=1)

    run(scenario)
    assert state(harness) is RunState.SUCCEEDED
    assert harness.backend.commands == ["echo one", "echo two"]
    assert harness.store.steps("r")["two"].outputs["stdout"] == "two\n"
    verified(harness)


def test_a_submission_is_refused_before_anything_is_recorded(
    harness: Harness, tmp_path: Path
) -> None:
    plan = two_steps(harness, tmp_path)

    async def scenario() -> None:
        engine = engine_of(harness)
        with pytest.raises(UsageError, match="unknown backend"):
            engine.submit(plan, "r", "qemu-of-mars", STARTER)
        engine.environ = {"LG_TEST_TOKEN": "short"}  # too short to redact
        with pytest.raises(LuminaGuardError, match="too short"):
            engine.submit(plan, "r", "fake", STARTER)
        await engine.stop(grace=1)
        with pytest.raises(LuminaGuardError, match="stopping"):
            engine.submit(plan, "r", "fake", STARTER)

    run(scenario)
    assert harness.store.run_states() == {}


def test_a_red_step_halts_and_an_approval_then_a_poke_resumes_it(
    harness: Harness, tmp_path: Path
) -> None:
    async def scenario() -> None:
        engine = engine_of(harness)
        await engine.start()
        engine.submit(compile_steps(tmp_path, RED), "r", "fake", STARTER)
        await settled(engine)
        assert state(harness) is RunState.HALTED
        assert steps(harness)["ship"] is StepState.AWAITING_APPROVAL
        engine.poke()  # nothing changed: the halted run is not driven again
        assert "r" not in engine.drives
        approved = decisions.approve(
            harness.store, "r", "ship", "alice", "looked at it", clock=harness.clock
        )
        assert approved.verdict is decisions.Verdict.APPROVED
        engine.poke()
        assert "r" in engine.drives
        await settled(engine)
        await engine.stop(grace=1)

    run(scenario)
    assert state(harness) is RunState.SUCCEEDED
    assert harness.backend.commands.count(SHIP) == 1
    verified(harness)


def test_a_decision_through_another_connection_makes_the_run_movable(
    harness: Harness, tmp_path: Path
) -> None:
    async def scenario() -> None:
        engine = engine_of(harness)
        await engine.start()
        engine.submit(compile_steps(tmp_path, RED), "r", "fake", STARTER)
        await settled(engine)
        assert not engine.movable("r")  # halted, nothing decided
        other = RunStore(harness.state)  # as `luminaguard deny` in another process
        try:
            decisions.deny(other, "r", "ship", "bob", "not today")
        finally:
            other.close()
        assert engine.movable("r")
        engine.poke()
        await settled(engine)
        await engine.stop(grace=1)

    run(scenario)
    assert state(harness) is RunState.FAILED
    assert steps(harness) == {
        "make": StepState.SUCCEEDED,
        "ship": StepState.DENIED,
        "after": StepState.SKIPPED,
    }
    assert SHIP not in harness.backend.commands
    verified(harness)


def test_a_restarted_engine_remembers_halted_runs_and_resumes_running_ones(
    harness: Harness, tmp_path: Path
) -> None:
    harness.start(compile_steps(tmp_path, RED), "held")
    plan = absolute_plan(two_steps(harness, tmp_path))
    harness.store.create_run("left", plan, "fake", STARTER)  # as a crash leaves a new run

    async def scenario() -> None:
        engine = engine_of(harness)
        await engine.start()
        assert set(engine.drives) == {"left"}  # the halted run waits for a decision
        await settled(engine)
        engine.poke()
        assert not engine.drives
        await engine.stop(grace=1)

    run(scenario)
    assert state(harness, "left") is RunState.SUCCEEDED
    assert state(harness, "held") is RunState.HALTED
    verified(harness)


def test_the_expiry_timer_denies_when_the_engine_clock_passes_the_expiry(
    harness: Harness, tmp_path: Path
) -> None:
    async def scenario() -> None:
        engine = engine_of(harness)
        await engine.start()
        engine.submit(compile_steps(tmp_path, RED, approval="1h"), "r", "fake", STARTER)
        await settled(engine)
        assert state(harness) is RunState.HALTED
        loop = asyncio.get_running_loop()
        assert engine._expiry is not None  # armed for the request's expiry, by the clock
        assert engine._expiry.when() - loop.time() == pytest.approx(3600, abs=5)
        harness.clock.now += 3601
        engine.arm_expiry()  # what the timer sees now: expired
        async with asyncio.timeout(PATIENCE):
            while state(harness) is not RunState.FAILED:
                await asyncio.sleep(0.01)
        await settled(engine)
        assert engine._expiry is None  # nothing pending: no timer
        await engine.stop(grace=1)

    run(scenario)
    [request] = harness.store.approvals()
    assert request.state is ApprovalState.EXPIRED
    assert steps(harness)["ship"] is StepState.DENIED
    verified(harness)


def test_an_approval_expires_on_time_with_nobody_watching(harness: Harness, tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = engine_of(harness)
        engine.clock = time.time  # real time: the runners it makes use it too
        await engine.start()
        started = time.monotonic()
        plan = compile_steps(tmp_path, RED, approval="300ms")
        engine.submit(plan, "r", "fake", STARTER)
        async with asyncio.timeout(PATIENCE):
            while state(harness) is not RunState.FAILED:
                await asyncio.sleep(0.02)
        assert time.monotonic() - started >= 0.3
        await settled(engine)
        await engine.stop(grace=1)

    run(scenario)
    assert steps(harness)["ship"] is StepState.DENIED
    verified(harness)


def test_cancelling_a_running_run_kills_its_step_and_skips_the_rest(
    harness: Harness, tmp_path: Path
) -> None:
    async def scenario() -> None:
        gate = Gate()
        engine = engine_of(harness)
        await engine.start()
        engine.submit(two_steps(harness, tmp_path, gate), "r", "fake", STARTER)
        await gate.reached(1)
        assert steps(harness)["one"] is StepState.RUNNING
        await engine.cancel("r", "carol")
        assert not engine.drives
        await engine.stop(grace=1)

    run(scenario)
    assert state(harness) is RunState.FAILED
    assert steps(harness) == {"one": StepState.FAILED, "two": StepState.SKIPPED}
    assert harness.store.steps("r")["one"].error == "run cancelled by carol"
    assert harness.backend.live == []  # the run's sandbox was destroyed
    verified(harness)


def test_cancelling_a_halted_run_denies_its_request(harness: Harness, tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = engine_of(harness)
        await engine.start()
        engine.submit(compile_steps(tmp_path, RED), "r", "fake", STARTER)
        await settled(engine)
        await engine.cancel("r", "carol")
        engine.poke()  # a cancelled run is never driven again
        assert not engine.drives
        with pytest.raises(UsageError):
            await engine.cancel("nope", "carol")
        await engine.stop(grace=1)

    run(scenario)
    assert state(harness) is RunState.FAILED
    assert steps(harness) == {
        "make": StepState.SUCCEEDED,
        "ship": StepState.DENIED,
        "after": StepState.SKIPPED,
    }
    [request] = harness.store.approvals()
    assert (request.state, request.approver) == (ApprovalState.DENIED, "carol")
    events = [r.event for r in harness.store.audit.records("r")]
    assert "run.cancelled" in events
    verified(harness)


def test_stop_lets_a_running_step_finish_within_the_grace(harness: Harness, tmp_path: Path) -> None:
    async def scenario() -> None:
        gate = Gate()
        engine = engine_of(harness)
        await engine.start()
        engine.submit(two_steps(harness, tmp_path, gate), "r", "fake", STARTER)
        await gate.reached(1)
        stopping = asyncio.create_task(engine.stop(grace=PATIENCE))
        await asyncio.sleep(0)  # stop has begun draining
        assert not stopping.done()
        gate.opened.set()
        await stopping
        assert not engine.drives
        # drained: the step finished, the next one did not start; the run stays running
        assert steps(harness) == {"one": StepState.SUCCEEDED, "two": StepState.PENDING}
        assert state(harness) is RunState.RUNNING
        engine.poke()  # a stopping engine looks at nothing
        assert not engine.drives
        again = engine_of(harness)  # the next start resumes it
        await again.start()
        await settled(again)
        await again.stop(grace=1)

    run(scenario)
    assert state(harness) is RunState.SUCCEEDED
    assert harness.backend.commands == ["echo one", "echo two"]
    verified(harness)


@pytest.mark.parametrize(
    ("idempotent", "after_restart", "run_state"),
    [
        (True, StepState.SUCCEEDED, RunState.SUCCEEDED),  # run again
        (False, StepState.UNKNOWN, RunState.HALTED),  # a person says whether it took effect
    ],
)
def test_a_step_that_outlives_the_grace_is_left_running_for_the_next_start(
    harness: Harness,
    tmp_path: Path,
    idempotent: bool,
    after_restart: StepState,
    run_state: RunState,
) -> None:
    flag = "true" if idempotent else "false"
    plan = compile_steps(
        tmp_path, f'    - {{id: one, agent: a, run: "echo one", idempotent: {flag}}}\n'
    )

    async def scenario() -> None:
        gate = Gate()
        harness.backend.on("echo one", Outcome(until=gate), times=1)
        harness.backend.on("echo one")  # the run after the restart
        engine = engine_of(harness)
        await engine.start()
        engine.submit(plan, "r", "fake", STARTER)
        await gate.reached(1)
        await engine.stop(grace=0.05)  # the gate never opens: the step outlives the grace
        assert steps(harness) == {"one": StepState.RUNNING}  # as a crash leaves it
        assert state(harness) is RunState.RUNNING
        again = engine_of(harness)
        await again.start()
        await settled(again)
        await again.stop(grace=1)

    run(scenario)
    assert steps(harness) == {"one": after_restart}
    assert state(harness) is run_state
    assert harness.backend.commands.count("echo one") == (2 if idempotent else 1)
    verified(harness)


def test_the_shared_slots_bound_steps_across_runs(harness: Harness, tmp_path: Path) -> None:
    wide = "".join(f'    - {{id: s{i}, agent: a, run: "echo wide"}}\n' for i in range(3))

    async def scenario() -> None:
        gate = Gate()
        harness.backend.on("echo wide", Outcome(until=gate))
        engine = engine_of(harness, slots=2, per_run=4)
        await engine.start()
        plan = compile_steps(tmp_path, wide)
        engine.submit(plan, "r1", "fake", STARTER)
        engine.submit(plan, "r2", "fake", STARTER)
        await gate.reached(2)
        for _ in range(100):  # every other step gets its turn to try for a slot
            await asyncio.sleep(0)
        assert (gate.entered, harness.backend.running) == (2, 2)
        gate.opened.set()
        await settled(engine)
        await engine.stop(grace=1)

    run(scenario)
    assert state(harness, "r1") is state(harness, "r2") is RunState.SUCCEEDED
    assert harness.backend.commands.count("echo wide") == 6
    assert harness.backend.most_running == 2
    verified(harness)


def test_a_run_whose_lease_another_process_holds_is_skipped_quietly(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="luminaguard.server")

    async def scenario() -> None:
        engine = engine_of(harness)
        await engine.start()
        other = RunStore(harness.state)  # as a `luminaguard resume` in another process
        try:
            plan = absolute_plan(two_steps(harness, tmp_path))
            harness.store.create_run("r", plan, "fake", STARTER)
            with other.lease("r"):
                engine.schedule("r")
                await settled(engine)
                assert harness.backend.commands == []
        finally:
            other.close()
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        engine.poke()  # its writes (or its end) poke the server: a running run is driven
        await settled(engine)
        await engine.stop(grace=1)

    run(scenario)
    assert state(harness) is RunState.SUCCEEDED
    verified(harness)


def test_a_run_that_cannot_be_driven_is_logged_and_left_alone(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plan = absolute_plan(two_steps(harness, tmp_path))
    harness.store.create_run("r", plan, "elsewhere", STARTER)

    async def scenario() -> None:
        engine = engine_of(harness)
        await engine.start()
        await settled(engine)
        await engine.stop(grace=1)

    run(scenario)
    assert "run r cannot be driven: unknown backend 'elsewhere'" in caplog.text
    assert harness.backend.commands == []


def test_schedule_while_driving_drives_once_more(harness: Harness, tmp_path: Path) -> None:
    async def scenario() -> None:
        gate = Gate()
        engine = engine_of(harness)
        await engine.start()
        engine.submit(two_steps(harness, tmp_path, gate), "r", "fake", STARTER)
        await gate.reached(1)
        engine.schedule("r")  # an approval arrived while the run was driven
        assert engine.again == {"r"}
        gate.opened.set()
        await settled(engine)
        assert engine.again == set()
        await engine.stop(grace=1)

    run(scenario)
    assert state(harness) is RunState.SUCCEEDED
    assert harness.backend.commands == ["echo one", "echo two"]


def test_an_expired_request_of_a_run_that_cannot_be_driven_is_not_retried_in_a_loop(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # halted by a command whose environment had the secret; the server's is too short to
    # redact, so every drive is refused (as it would be for an audit log that does not
    # verify, or a backend this server cannot open)
    assert harness.start(compile_steps(tmp_path, RED, approval="1s"), "r").state == "halted"
    harness.clock.now += 2  # the request has expired

    async def scenario() -> None:
        engine = engine_of(harness)
        engine.environ = {"LG_TEST_TOKEN": "short"}
        await engine.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while caplog.text.count("cannot be driven") < 5:
                    await asyncio.sleep(0.01)
        await engine.stop(grace=1)

    run(scenario)
    assert caplog.text.count("cannot be driven") < 5

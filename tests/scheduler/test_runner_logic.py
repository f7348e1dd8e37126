"""The runner's logic on the fake backend: outputs, approvals, timeouts, retries, conditions.

The same behaviours run on the real sandbox in tests/integration/test_runs.py; here each
takes milliseconds, because nothing is started.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError
from luminaguard.hypervisor.fake import Outcome
from tests.scheduler.harness import Harness, compile_steps

RED = """\
    - {id: make, agent: a, run: "echo data > /work/data.txt"}
    - {id: ship, agent: a, run: "cp /work/data.txt /work/shipped.txt", needs: [make]}
    - {id: after, agent: a, run: "cat /work/shipped.txt", needs: [ship]}
"""
SHIP = "cp /work/data.txt /work/shipped.txt"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    found = Harness(tmp_path / "state")
    found.backend.on("echo data > /work/data.txt")
    found.backend.on(SHIP)
    found.backend.on("cat /work/shipped.txt", Outcome(stdout="data\n"))
    yield found
    found.store.close()


def test_green_steps_run_in_order_and_outputs_flow(harness: Harness, tmp_path: Path) -> None:
    plan = compile_steps(
        tmp_path,
        """\
    - {id: one, agent: a, run: "echo one"}
    - {id: two, agent: a, run: "echo {{ steps.one.outputs.stdout | trim }}-done", needs: [one]}
""",
    )
    harness.backend.on("echo one", Outcome(stdout="one\n"))
    harness.backend.on("echo 'one'-done", Outcome(stdout="one-done\n"))
    assert harness.start(plan).state == "succeeded"
    assert harness.backend.commands == ["echo one", "echo 'one'-done"]
    assert harness.store.steps("r")["two"].outputs["stdout"] == "one-done\n"
    [created] = [call for call in harness.backend.calls if call.method == "create"]
    assert created.spec is not None and created.spec.workdir.name == "work"
    assert harness.backend.live == []  # the run's sandbox was destroyed


def test_a_red_step_halts_and_runs_once_approved(harness: Harness, tmp_path: Path) -> None:
    plan = compile_steps(tmp_path, RED)
    assert harness.start(plan).state == "halted"
    assert harness.states() == {
        "make": ("succeeded", 1),
        "ship": ("awaiting_approval", 0),
        "after": ("pending", 0),
    }
    assert SHIP not in harness.backend.commands
    assert harness.resume().state == "halted"  # still waiting: nothing runs
    harness.decide("ship", "approved")
    assert harness.resume().state == "succeeded"
    assert harness.states() == {
        "make": ("succeeded", 1),
        "ship": ("succeeded", 1),
        "after": ("succeeded", 1),
    }
    assert harness.backend.commands.count(SHIP) == 1


def test_a_denied_step_fails_the_run_and_skips_its_dependents(
    harness: Harness, tmp_path: Path
) -> None:
    assert harness.start(compile_steps(tmp_path, RED)).state == "halted"
    harness.decide("ship", "denied")
    assert harness.resume().state == "failed"
    assert harness.states() == {
        "make": ("succeeded", 1),
        "ship": ("denied", 0),
        "after": ("skipped", 0),
    }
    assert harness.backend.commands == ["echo data > /work/data.txt"]


def test_an_approval_past_its_timeout_denies(harness: Harness, tmp_path: Path) -> None:
    assert harness.start(compile_steps(tmp_path, RED, approval="1s")).state == "halted"
    harness.clock.now += 0.5
    assert harness.resume().state == "halted"  # within the timeout: still waiting
    harness.clock.now += 1.0
    assert harness.resume().state == "failed"
    ship = harness.store.steps("r")["ship"]
    assert (ship.state, ship.error) == ("denied", "approval expired by luminaguard")
    assert [a.state for a in harness.store.approvals()] == ["expired"]
    assert SHIP not in harness.backend.commands


def test_changed_arguments_invalidate_an_approval(harness: Harness, tmp_path: Path) -> None:
    plan = compile_steps(
        tmp_path,
        """\
    - {id: stamp, agent: a, run: "echo first", idempotent: true}
    - id: ship
      agent: a
      run: "cp /work/x /work/{{ steps.stamp.outputs.stdout | trim }}"
      needs: [stamp]
""",
    )
    harness.backend.on("echo first", Outcome(stdout="first\n"))
    assert harness.start(plan).state == "halted"
    [request] = harness.store.approvals("pending")
    assert request.card["arguments"] == {"command": "cp /work/x /work/'first'"}
    harness.decide("ship", "approved")
    # the upstream output differs now: the approved action is not this one. No move of
    # the state table gets here (a succeeded step is final), so write what a second
    # finish of stamp would have written, in runs.db and (keyed) in the audit log
    changed = {"stdout": "second\n", "exit_code": 0}
    text = json.dumps(changed, sort_keys=True)
    harness.store.db.execute("UPDATE steps SET outputs = ? WHERE step_id = 'stamp'", (text,))
    harness.store.audit_event("r", "stamp", "step.succeeded", {"attempt": 1, "outputs": changed})
    assert harness.resume().state == "halted"
    assert harness.states()["ship"] == ("awaiting_approval", 0)  # never executed
    [new] = harness.store.approvals("pending")
    assert new.card["arguments"] == {"command": "cp /work/x /work/'second'"}
    assert new.action_hash != request.action_hash
    assert not any(command.startswith("cp ") for command in harness.backend.commands)


def test_a_step_past_its_timeout_fails_and_skips_its_dependents(
    harness: Harness, tmp_path: Path
) -> None:
    plan = compile_steps(
        tmp_path,
        """\
    - {id: slow, agent: a, run: "sleep 30", timeout: 100ms}
    - {id: next, agent: a, run: "echo next", needs: [slow]}
""",
    )
    harness.backend.on("sleep 30", Outcome(delay=30))
    assert harness.start(plan).state == "failed"
    slow = harness.store.steps("r")["slow"]
    assert (slow.state, slow.error) == ("failed", "timed out after 0.1s; the sandbox was killed")
    assert slow.outputs["exit_code"] == 137
    assert harness.states()["next"] == ("skipped", 0)
    [call] = [call for call in harness.backend.calls if call.method == "exec"]
    assert call.timeout == 0.1  # the step's timeout reached the backend


def test_an_idempotent_step_is_retried_with_growing_pauses(
    harness: Harness, tmp_path: Path
) -> None:
    plan = compile_steps(
        tmp_path, '    - {id: flaky, agent: a, run: "echo try", idempotent: true, retries: 3}\n'
    )
    harness.backend.on("echo try", Outcome(exit_code=1), times=2)
    harness.backend.on("echo try", Outcome(stdout="try\n"))
    assert harness.start(plan).state == "succeeded"
    assert harness.states()["flaky"] == ("succeeded", 3)
    first, second = harness.pauses  # one pause before each new attempt
    assert 0.125 <= first <= 0.25 and 0.25 <= second <= 0.5


def test_a_step_not_idempotent_runs_once(harness: Harness, tmp_path: Path) -> None:
    plan = compile_steps(tmp_path, '    - {id: once, agent: a, run: "echo try"}\n')
    harness.backend.on("echo try", Outcome(exit_code=1))
    assert harness.start(plan).state == "failed"
    assert harness.states()["once"] == ("failed", 1)
    assert harness.pauses == []


def test_when_false_skips_the_step(harness: Harness, tmp_path: Path) -> None:
    plan = compile_steps(
        tmp_path,
        """\
    - {id: one, agent: a, run: "echo one"}
    - {id: two, agent: a, run: "echo two", needs: [one], when: "steps.one.outputs.exit_code != 0"}
    - id: three
      agent: a
      run: "echo three"
      needs: [one]
      when: "steps.one.outputs.exit_code == 0"
""",
    )
    for word in ("one", "two", "three"):
        harness.backend.on(f"echo {word}", Outcome(stdout=f"{word}\n"))
    assert harness.start(plan).state == "succeeded"
    assert harness.states()["two"] == ("skipped", 0)
    assert harness.backend.commands == ["echo one", "echo three"]


def test_a_backend_error_fails_only_that_step(harness: Harness, tmp_path: Path) -> None:
    plan = compile_steps(
        tmp_path,
        """\
    - {id: boom, agent: a, run: "echo boom"}
    - {id: after, agent: a, run: "echo after", needs: [boom]}
    - {id: other, agent: a, run: "echo other"}
""",
    )
    harness.backend.on("echo boom", Outcome(error=BackendError("the VM died under the step")))
    harness.backend.on("echo other")
    assert harness.start(plan).state == "failed"
    steps = harness.store.steps("r")
    assert (steps["boom"].state, steps["boom"].error) == ("failed", "the VM died under the step")
    assert (steps["after"].state, steps["other"].state) == ("skipped", "succeeded")


def test_no_more_steps_run_at_once_than_the_bound(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "state", concurrency=2)
    steps = "".join(f'    - {{id: s{i}, agent: a, run: "echo {i}"}}\n' for i in range(4))
    together = asyncio.Barrier(2)  # each step waits until another runs beside it
    harness.backend.on(lambda command: command.startswith("echo "), Outcome(until=together.wait))
    result = asyncio.run(
        asyncio.wait_for(harness.runner().start(compile_steps(tmp_path, steps), "r"), 10)
    )
    assert result.state == "succeeded"
    assert harness.backend.most_running == 2
    harness.store.close()


def test_a_sandbox_that_cannot_be_made_fails_the_step(harness: Harness, tmp_path: Path) -> None:
    harness.backend.create_error = BackendError("no memory left for a VM")
    plan = compile_steps(tmp_path, '    - {id: one, agent: a, run: "echo one"}\n')
    assert harness.start(plan).state == "failed"
    one = harness.store.steps("r")["one"]
    assert (one.state, one.error) == ("failed", "no memory left for a VM")
    assert harness.backend.commands == []

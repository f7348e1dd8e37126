"""A run's cost per step stays flat as runs grow: counted, not timed.

Per step: the SQL statements the store executes, the needs the loop looks at, and the
step records a templated step reads to render. Each is measured at 100 and 1,000 steps
for a chain, a wide fan-out (one root, every other step needs it), a fan-in (one step
needing all the others) and a templated chain (each command uses the previous output).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from luminaguard.config.render import render_text
from luminaguard.hypervisor.fake import Outcome
from luminaguard.scheduler import runner as runner_module
from luminaguard.scheduler.readiness import Readiness
from luminaguard.scheduler.states import StepState
from luminaguard.scheduler.store import StepRecord
from luminaguard.scheduler.templates import template_context
from tests.scheduler.harness import Harness, compile_steps

SIZES = (100, 1000)


def steps_yaml(shape: str, size: int) -> str:
    lines = []
    for i in range(size):
        command, needs = "true", ""
        if shape in ("chain", "templated") and i:
            needs = f", needs: [s{i - 1}]"
        if shape == "wide" and i:
            needs = ", needs: [s0]"
        if shape == "fan-in" and i == size - 1:
            needs = ", needs: [" + ", ".join(f"s{j}" for j in range(size - 1)) + "]"
        if shape == "templated" and i:
            command = f"echo {{{{ steps.s{i - 1}.outputs.stdout | trim }}}}"
        lines.append(f'    - {{id: s{i}, agent: a, run: "{command}"{needs}}}')
    return "\n".join(lines) + "\n"


class CountingReadiness(Readiness):
    """``Readiness`` that keeps the instances the runner makes, to read their counts."""

    made: list[Readiness] = []

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        CountingReadiness.made.append(self)


class CountingRecords(Mapping[str, StepRecord]):
    """The run's step states, counting the lookups of single steps."""

    def __init__(self, records: dict[str, StepRecord]) -> None:
        self.records = records
        self.lookups = 0

    def __getitem__(self, step_id: str) -> StepRecord:
        self.lookups += 1
        return self.records[step_id]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("a step's template context must not walk every step")

    def __len__(self) -> int:
        raise AssertionError("a step's template context must not count every step")


def measure(tmp_path: Path, shape: str, size: int) -> tuple[float, float]:
    """SQL statements and needs looked at, per step, for a run of ``shape`` and ``size``."""
    harness = Harness(tmp_path / f"{shape}-{size}")
    harness.backend.on(lambda command: command.startswith(("true", "echo")), Outcome(stdout="ok\n"))
    plan = compile_steps(tmp_path, steps_yaml(shape, size))
    statements = 0

    def count(_: str) -> None:
        nonlocal statements
        statements += 1

    harness.store.db.set_trace_callback(count)
    CountingReadiness.made.clear()
    result = harness.start(plan)
    assert result.state == "succeeded"
    [readiness] = CountingReadiness.made
    return statements / size, readiness.checks / size


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["chain", "wide", "fan-in", "templated"])
def test_work_per_step_does_not_grow_with_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    monkeypatch.setattr(runner_module, "Readiness", CountingReadiness)
    (small_sql, small_checks), (large_sql, large_checks) = (
        measure(tmp_path, shape, size) for size in SIZES
    )
    # the run's fixed cost (its creation, its end) spreads over more steps: never more
    assert large_sql <= small_sql
    assert small_checks <= 2 and large_checks <= 2  # each need: at the start, and as it ends


def test_a_template_reads_only_the_steps_it_names(tmp_path: Path) -> None:
    plan = compile_steps(tmp_path, steps_yaml("templated", 3))
    records = {
        f"s{i}": StepRecord(f"s{i}", StepState.SUCCEEDED, 1, None, {"stdout": f"out{i}"}, None)
        for i in range(1000)
    }
    counting = CountingRecords(records)
    context = template_context(plan, counting)
    assert render_text("{{ steps.s7.outputs.stdout }}-{{ steps.s7.outputs.stdout }}", context) == (
        "out7-out7"
    )
    assert counting.lookups <= 2


def test_a_template_cannot_change_the_run_state(tmp_path: Path) -> None:
    plan = compile_steps(tmp_path, steps_yaml("templated", 2))
    outputs = {"structured": {"items": [1, 2]}}
    records = {"s0": StepRecord("s0", StepState.SUCCEEDED, 1, None, outputs, None)}
    render_text(
        "{{ steps.s0.outputs.structured['items'].append(3) }}", template_context(plan, records)
    )
    render_text("{{ steps.s0.outputs.structured.clear() }}", template_context(plan, records))
    assert records["s0"].outputs == {"structured": {"items": [1, 2]}}
    later = template_context(plan, records)
    assert render_text("{{ steps.s0.outputs.structured['items'] | length }}", later) == 2


def test_steps_that_did_not_succeed_are_not_in_the_context(tmp_path: Path) -> None:
    plan = compile_steps(tmp_path, steps_yaml("templated", 2))
    records = {"s0": StepRecord("s0", StepState.FAILED, 1, None, {"stdout": "x"}, None)}
    context = template_context(plan, records)
    assert "s0" not in context["steps"]
    assert list(context["steps"]) == []


@pytest.mark.parametrize(
    "where",
    [
        "run_id = ? AND step_id = ? AND event = ?",  # an approval, a request of a Red step
        "run_id = ? AND step_id = ?",  # a step's votes
        "run_id = ? AND event = ?",  # run.created: who started the run
    ],
)
def test_a_step_finds_its_audit_records_without_reading_the_log(tmp_path: Path, where: str) -> None:
    harness = Harness(tmp_path / "state")
    params = ("r", "s0", "approval.approved")[: where.count("?")]
    plan = harness.store.db.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM audit WHERE {where} ORDER BY seq", params
    ).fetchall()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX" in detail, detail


def test_resume_reads_the_steps_once_whatever_their_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    for size in SIZES:
        harness = Harness(tmp_path / f"resume-{size}")
        plan = compile_steps(tmp_path, steps_yaml("wide", size))
        harness.runner().create(plan, "r")
        steps = harness.store.steps
        calls = 0

        def counted(run_id: str, steps: Any = steps) -> dict[str, StepRecord]:
            nonlocal calls
            calls += 1
            return steps(run_id)  # type: ignore[no-any-return]

        monkeypatch.setattr(harness.store, "steps", counted)
        runner = harness.runner()
        runner.drain()  # resume recovers, then starts nothing: it reads, runs no step
        asyncio.run(runner.resume("r"))
        reads.append(calls)
    assert reads[0] == reads[1] <= 4

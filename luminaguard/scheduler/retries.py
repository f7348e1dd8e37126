"""A person re-opens failed steps of a run (``luminaguard retry``), so that they run again.

A failed step moves back to pending (audited ``step.retried``: who and why), and so do
the steps skipped because of it: a skipped step whose every need that did not succeed
is re-opened now (audited ``step.reopened``), in plan order, so a chain re-opens whole.
Nothing runs here: the next ``resume`` (or the server's drive) runs them.

Refused, with nothing recorded: a step that did not fail; a denied step, or a failed
one a person declined to re-run (a person said no); a step that halted for approval,
unless the person may approve it; a run whose audit log does not vouch for runs.db.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from luminaguard.compiler.plan import Plan
from luminaguard.errors import UsageError
from luminaguard.scheduler import audited, decisions
from luminaguard.scheduler.states import StepState
from luminaguard.scheduler.store import RunStore, StepRecord

RETRIED = "step.retried"
REOPENED = "step.reopened"


class NotRetryable(UsageError):
    """A step that may not be retried: it did not fail, or a person said no to it."""


@dataclass(frozen=True)
class Retried:
    """What a retry re-opened: the failed steps, and the skipped steps that need them."""

    run_id: str
    who: str
    retried: tuple[str, ...]
    reopened: tuple[str, ...]


def retry(
    store: RunStore,
    run_id: str,
    step_ids: Iterable[str] | None,
    who: str,
    reason: str | None,
    role: str | None = None,
) -> Retried:
    """Re-open the failed steps named (None: every failed step) and those they skipped."""
    audited.check_log(store)
    plan = audited.trusted_run(store, run_id).plan
    audited.check_steps(store, run_id)
    steps = store.steps(run_id)
    targets = _targets(steps, step_ids)
    for step_id in targets:
        _check_retryable(store, run_id, step_id, steps[step_id])
        decisions.may_approve(store, run_id, step_id, who, role)
    dependents = reopened_dependents(plan, steps, targets)
    data: dict[str, Any] = {"by": who, "reason": reason}
    moves = [(step_id, RETRIED, data) for step_id in targets]
    moves += [(step_id, REOPENED, {**data, "because": list(targets)}) for step_id in dependents]
    store.reopen_steps(run_id, moves)
    return Retried(run_id, who, tuple(targets), tuple(dependents))


def _targets(steps: dict[str, StepRecord], step_ids: Iterable[str] | None) -> list[str]:
    """The steps to retry, in plan order (every failed one when none is named)."""
    if step_ids is None:
        failed = [s for s, record in steps.items() if record.state is StepState.FAILED]
        if not failed:
            raise NotRetryable("the run has no failed step to retry")
        return failed
    named = list(dict.fromkeys(step_ids))
    for step_id in named:
        if step_id not in steps:
            raise UsageError(f"the run has no step {step_id!r} (steps: {', '.join(steps)})")
    if not named:
        raise UsageError("name a step to retry (or retry every failed step)")
    return [s for s in steps if s in named]


def _check_retryable(store: RunStore, run_id: str, step_id: str, step: StepRecord) -> None:
    if step.state is StepState.DENIED:
        raise NotRetryable(
            f"{step_id}: denied (a person said no, or the approval expired); not retried:"
            " start a new run to ask again"
        )
    if step.state is not StepState.FAILED:
        raise NotRetryable(f"{step_id}: only a failed step can be retried (state: {step.state})")
    moves = [r for r in store.audit.records(run_id, step_id) if "state" in r.data]
    if moves and moves[-1].event == "operator.declined":
        who = moves[-1].data.get("by", "a person")
        raise NotRetryable(f"{step_id}: {who} declined to run it again; not retried")


def reopened_dependents(
    plan: Plan, steps: dict[str, StepRecord], targets: Iterable[str]
) -> list[str]:
    """The skipped steps to re-open with ``targets``: every blocked need of each is re-opened.

    Plan order puts a step after its needs, so one pass re-opens a chain.
    """
    reopened = set(targets)
    found: list[str] = []
    for step in plan.steps:
        if steps[step.id].state is not StepState.SKIPPED:
            continue
        blocked = [n for n in step.needs if steps[n].state.blocks_dependents]
        if blocked and all(need in reopened for need in blocked):
            reopened.add(step.id)
            found.append(step.id)
    return found

"""What a person decides about a step that waits for one, and the moves it makes.

A Red step halted for approval is approved or denied; an ``unknown`` step (the runner
died while it ran) is approved to run again, declined (it fails) or marked done. Each
function checks who may decide, records the decision (the store refuses a move the
state table does not allow) and returns what it recorded, for the caller to print.
A refusal raises ``UsageError`` with nothing recorded.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from luminaguard.errors import UsageError
from luminaguard.scheduler import audited
from luminaguard.scheduler.approvers import ApprovalTerms
from luminaguard.scheduler.states import ApprovalState, StateError, StepState
from luminaguard.scheduler.store import ApprovalRecord, RunStore

EXPIRED_REASON = "no decision before the timeout"


class NotAllowed(UsageError):
    """The person may not make this decision (not an approver, or the run's starter)."""


class Verdict(enum.Enum):
    """What a decision recorded."""

    APPROVED = enum.auto()  # the pending request of a Red step
    COUNTED = enum.auto()  # one approval of several needed: the request stays pending
    EXPIRED = enum.auto()  # an approval came too late: the request expired instead
    RERUN = enum.auto()  # an unknown step runs again on resume
    DENIED = enum.auto()  # the pending request, and the step
    DECLINED = enum.auto()  # an unknown step is not run again: it failed
    MARKED_DONE = enum.auto()  # an unknown step took effect: it succeeded


@dataclass(frozen=True)
class Recorded:
    """A decision as recorded: what, by whom, about which action (of a request)."""

    verdict: Verdict
    who: str
    action_hash: str = ""  # of the request decided, if any
    approved_by: tuple[str, ...] = ()  # the distinct approvers so far (of a request)
    needed: int = 0  # approvals still needed before the request is approved


def expire(store: RunStore, request: ApprovalRecord) -> ApprovalRecord:
    """Record that the pending request expired; the request as it is now."""
    store.decide_approval(request, ApprovalState.EXPIRED, "luminaguard", EXPIRED_REASON)
    now = store.approval(request.run_id, request.step_id, request.action_hash)
    return now or request


def as_audited(store: RunStore, request: ApprovalRecord) -> ApprovalRecord:
    """The request with the card and expiry of its audit record (runs.db may be edited)."""
    record = audited.request(store, request.run_id, request.step_id, request.action_hash)
    if record is None:
        raise UsageError(
            f"{request.run_id} {request.step_id}: the approval request has no authentic audit"
            " record (runs.db was edited); nothing shown"
        )
    card, expires = dict(record.data.get("card") or {}), float(record.data.get("expires", 0))
    card["min_approvals"] = ApprovalTerms.from_card(card).min_approvals
    card["approved_by"] = approved_by(store, request)
    return dataclasses.replace(request, card=card, expires=expires)


def approved_by(store: RunStore, request: ApprovalRecord) -> list[str]:
    """The distinct names that approved the request's action so far (by the audit log)."""
    key = (request.run_id, request.step_id, request.action_hash)
    names: list[str] = []
    for who, _ in store.approvers_of(*key):
        if who not in names:
            names.append(who)
    return names


def approve(
    store: RunStore,
    run_id: str,
    step_id: str,
    who: str,
    reason: str | None,
    clock: Callable[[], float] = time.time,
    action_hash: str | None = None,
    role: str | None = None,
) -> Recorded:
    """Approve the step's pending request (bound to its action hash), or an unknown's re-run.

    ``action_hash``: the action the person saw; refused unless it is the pending one's.
    ``role``: the role of the person's token, if the caller knows it (``role:`` approvers).
    A request needing several approvers stays pending (``COUNTED``) until the last.
    """
    audited.trusted_steps(store, run_id)
    request = _pending(store, run_id, step_id, action_hash)
    digest = request.action_hash if request else None
    terms = _check_may_decide(store, run_id, step_id, who, True, digest, role)
    if request is None:
        _unknown(store, run_id, step_id)
        data = {"by": who, "reason": reason}
        store.set_step(run_id, step_id, StepState.PENDING, "operator.rerun", data)
        return Recorded(Verdict.RERUN, who)
    if clock() > as_audited(store, request).expires:
        expire(store, request)
        return Recorded(Verdict.EXPIRED, "luminaguard", request.action_hash)
    voters = store.vote_approval(request, who, role, reason, terms.min_approvals)
    needed = max(0, terms.min_approvals - len(voters))
    verdict = Verdict.COUNTED if needed else Verdict.APPROVED
    return Recorded(verdict, who, request.action_hash, tuple(voters), needed)


def deny(
    store: RunStore,
    run_id: str,
    step_id: str,
    who: str,
    reason: str | None,
    action_hash: str | None = None,
    role: str | None = None,
) -> Recorded:
    """Deny the pending request and its step, or decline an unknown step's re-run.

    A denial can only stop things, so it is recorded even when the log does not verify.
    One approver's denial denies, whatever approvals the request had.
    ``action_hash``: the action the person saw; refused unless it is the pending one's.
    """
    request = _pending(store, run_id, step_id, action_hash)
    digest = request.action_hash if request else None
    _check_may_decide(store, run_id, step_id, who, False, digest, role)
    if request is not None:
        store.deny_step(request, who, reason, f"denied by {who}")
        return Recorded(Verdict.DENIED, who, request.action_hash)
    _unknown(store, run_id, step_id)
    store.set_step(
        run_id, step_id, StepState.FAILED, "operator.declined", {"by": who}, f"not re-run ({who})"
    )
    return Recorded(Verdict.DECLINED, who)


def mark_done(
    store: RunStore,
    run_id: str,
    step_id: str,
    who: str,
    reason: str | None,
    role: str | None = None,
) -> Recorded:
    """Record an unknown step as succeeded: a person checked it took effect."""
    audited.trusted_steps(store, run_id)
    state = _state(store, run_id, step_id)
    if state != StepState.UNKNOWN:
        raise UsageError(f"only an unknown step can be marked done (state: {state})")
    _check_may_decide(store, run_id, step_id, who, True, None, role)
    data = {"by": who, "reason": reason}
    store.set_step(run_id, step_id, StepState.SUCCEEDED, "operator.marked_done", data)
    return Recorded(Verdict.MARKED_DONE, who)


def may_approve(
    store: RunStore, run_id: str, step_id: str, who: str, role: str | None = None
) -> None:
    """Refuse (``NotAllowed``) unless ``who`` may approve the step, had it to be approved.

    A step that never halted for approval has no terms: anyone may.
    """
    _check_may_decide(store, run_id, step_id, who, True, None, role)


def _pending(
    store: RunStore, run_id: str, step_id: str, expected: str | None = None
) -> ApprovalRecord | None:
    """The step's pending request; with ``expected``, only if it is for that action.

    The decision is then written keyed by that hash: a request replaced meanwhile (by
    another process) is not the one decided (the store refuses the move).
    """
    steps = store.steps(store.run(run_id).id)
    if step_id not in steps:
        raise UsageError(f"run {run_id!r} has no step {step_id!r} (steps: {', '.join(steps)})")
    digest = steps[step_id].action_hash
    request = store.approval(run_id, step_id, digest) if digest else None
    pending = request if request and request.state == ApprovalState.PENDING else None
    if expected is not None and (pending is None or pending.action_hash != expected):
        raise StateError(f"{step_id}: no pending request for action {expected[:19]}")
    return pending


def _state(store: RunStore, run_id: str, step_id: str) -> StepState:
    return store.steps(run_id)[step_id].state


def _unknown(store: RunStore, run_id: str, step_id: str) -> None:
    """Refuse unless the step (with no pending request) is unknown."""
    state = _state(store, run_id, step_id)
    if state != StepState.UNKNOWN:
        raise UsageError(f"step {step_id!r} is not waiting for a decision (state: {state})")


def _check_may_decide(
    store: RunStore,
    run_id: str,
    step_id: str,
    who: str,
    approving: bool,
    digest: str | None,
    role: str | None,
) -> ApprovalTerms:
    """Refuse (nothing recorded) unless ``who`` (with ``role``) may decide this step.

    The terms come from the audited request (of ``digest``, or the step's latest request
    when deciding about an unknown step), never from what runs.db says now. Returns them
    (no terms, when the step never halted for approval).
    """
    requests = [
        record
        for record in store.audit.records(run_id, step_id, "approval.requested")
        if digest is None or record.data.get("action_hash") == digest
    ]
    if not requests:
        if digest is None:
            return ApprovalTerms()  # never halted for approval: no terms
        raise UsageError(f"{step_id}: the approval request has no audit record; nothing recorded")
    if not store.audit.authentic(requests[-1]):
        raise UsageError(f"{step_id}: the audited approval request was altered; nothing recorded")
    terms = ApprovalTerms.from_card(requests[-1].data.get("card") or {})
    why = terms.refusal(who, audited.started_by(store, run_id), approving, role)
    if why is not None:
        raise NotAllowed(f"{step_id}: {why}; nothing recorded")
    return terms

"""The approval endpoints: pending requests, one card, approve, deny, several at once.

A decision names the action hash the approver saw: it is recorded only while that
exact action's request is pending (409 otherwise: decided, expired, or the action
changed). Two decisions on one request race inside the store's write transaction:
exactly one is recorded, the other gets 409. Who decides is the token's name (and its
role, for ``role:NAME`` approvers), checked against the approvers the request was
audited with (403 when not among them). A request needing several approvers stays
pending until enough distinct names approved: each approval's reply says how many are
still needed; a name approving twice gets 409 (it counts once). One denial denies.
"""

from __future__ import annotations

from pydantic import BaseModel

from luminaguard.errors import LuminaGuardError
from luminaguard.scheduler import decisions
from luminaguard.scheduler.decisions import NotAllowed, Verdict
from luminaguard.scheduler.states import ApprovalState, StateError
from luminaguard.scheduler.store import ApprovalRecord
from luminaguard.server.http import ApiError, Call, Endpoint
from luminaguard.server.models import (
    ApprovalList,
    ApprovalView,
    BatchResult,
    BatchResults,
    Decide,
    Decided,
    DecideMany,
)
from luminaguard.server.tokens import Permission


def view(call: Call, request: ApprovalRecord) -> ApprovalView:
    """A request as shown: the card and expiry as audited (runs.db may be edited)."""
    try:
        shown = decisions.as_audited(call.server.store, request)
    except LuminaGuardError as exc:
        raise ApiError(409, str(exc)) from None
    return ApprovalView(
        run_id=shown.run_id,
        step_id=shown.step_id,
        action_hash=shown.action_hash,
        state=shown.state,
        card=shown.card,
        min_approvals=int(shown.card.get("min_approvals") or 1),
        approved_by=[str(name) for name in shown.card.get("approved_by") or ()],
        requested=shown.requested,
        expires=shown.expires,
        decided=shown.decided,
        approver=shown.approver,
        reason=shown.reason,
    )


async def pending(call: Call) -> BaseModel:
    """Every pending request, oldest first."""
    store = call.server.store
    requests = store.approvals(ApprovalState.PENDING)
    return ApprovalList(approvals=[view(call, r) for r in requests])


def _latest(call: Call, run_id: str, step_id: str) -> ApprovalRecord:
    store = call.server.store
    if run_id not in store.run_states():
        raise ApiError(404, f"no run {run_id!r}")
    requests = [r for r in store.approvals(None, run_id) if r.step_id == step_id]
    if not requests:
        raise ApiError(404, f"step {step_id!r} of run {run_id!r} has no approval request")
    live = [r for r in requests if r.state is ApprovalState.PENDING]
    return (live or requests)[-1]


async def get_one(call: Call) -> BaseModel:
    """The step's pending request (or its latest one) with its card."""
    return view(call, _latest(call, call.param("run_id"), call.param("step_id")))


def decide(call: Call, run_id: str, step_id: str, digest: str, approving: bool) -> Decided:
    """Record one decision bound to ``digest``; ApiError 404/409/403 when it cannot be."""
    request = _latest(call, run_id, step_id)
    if request.state is not ApprovalState.PENDING:
        raise ApiError(409, f"the request was {request.state} already")
    if request.action_hash != digest:
        raise ApiError(409, "the action changed: the pending request is for another action hash")
    store, who, reason = call.server.store, call.name, _reason(call)
    role = str(call.who.role) if call.who else None
    try:
        if approving:
            done = decisions.approve(
                store, run_id, step_id, who, reason, action_hash=digest, role=role
            )
        else:
            done = decisions.deny(store, run_id, step_id, who, reason, digest, role)
    except NotAllowed as exc:
        raise ApiError(403, str(exc)) from None
    except (StateError, LuminaGuardError) as exc:
        raise ApiError(409, str(exc)) from None
    if done.verdict is Verdict.EXPIRED:
        call.server.engine.schedule(run_id)
        raise ApiError(409, "the request expired before the decision; the step is denied")
    if done.verdict is not Verdict.COUNTED:  # counted: the request is still pending
        call.server.engine.schedule(run_id)
    return Decided(
        run_id=run_id,
        step_id=step_id,
        action_hash=digest,
        verdict=done.verdict.name.lower(),
        by=done.who,
        approved_by=list(done.approved_by),
        needed=done.needed,
    )


def _reason(call: Call) -> str | None:
    body = call.body
    return body.reason if isinstance(body, Decide) else None


async def approve(call: Call) -> BaseModel:
    """Approve the pending request for exactly ``action_hash``."""
    assert isinstance(call.body, Decide)
    run_id, step_id = call.param("run_id"), call.param("step_id")
    return decide(call, run_id, step_id, call.body.action_hash, approving=True)


async def deny(call: Call) -> BaseModel:
    """Deny the pending request for exactly ``action_hash``: the step is denied."""
    assert isinstance(call.body, Decide)
    run_id, step_id = call.param("run_id"), call.param("step_id")
    return decide(call, run_id, step_id, call.body.action_hash, approving=False)


async def decide_many(call: Call) -> BaseModel:
    """Several decisions, each bound to its own hash; each succeeds or fails alone."""
    assert isinstance(call.body, DecideMany)
    results = []
    for item in call.body.decisions:
        decide_one = Decide(action_hash=item.action_hash, reason=item.reason)
        one = Call(call.request, call.who, decide_one, call.server)
        approving = item.verdict == "approve"
        try:
            done = decide(one, item.run_id, item.step_id, item.action_hash, approving)
        except ApiError as exc:
            results.append(BatchResult(status=exc.status, error=str(exc)))
            continue
        results.append(BatchResult(status=200, decided=done))
    return BatchResults(results=results)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/v1/approvals",
        pending,
        Permission.READ,
        "list pending approvals",
        response=ApprovalList,
    ),
    Endpoint(
        "POST",
        "/v1/approvals/decide",
        decide_many,
        Permission.APPROVE,
        "decide several approvals",
        body=DecideMany,
        response=BatchResults,
        errors=(422,),
    ),
    Endpoint(
        "GET",
        "/v1/approvals/{run_id}/{step_id}",
        get_one,
        Permission.READ,
        "get an approval with its card",
        response=ApprovalView,
        errors=(404, 409),
    ),
    Endpoint(
        "POST",
        "/v1/approvals/{run_id}/{step_id}/approve",
        approve,
        Permission.APPROVE,
        "approve an action",
        body=Decide,
        response=Decided,
        errors=(403, 404, 409, 422),
    ),
    Endpoint(
        "POST",
        "/v1/approvals/{run_id}/{step_id}/deny",
        deny,
        Permission.APPROVE,
        "deny an action",
        body=Decide,
        response=Decided,
        errors=(403, 404, 409, 422),
    ),
)

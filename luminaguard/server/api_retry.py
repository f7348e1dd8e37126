"""The retry endpoints: re-open failed steps of a run; the engine then drives it again.

``POST /v1/runs/{run_id}/steps/{step_id}/retry`` re-opens one failed step, and
``POST /v1/runs/{run_id}/retry`` several (every failed one when none is named), with
the steps skipped because of them. A retry runs an action again, as an approval does,
so it needs the ``approve`` permission; a step that halted for approval is retried only
by a name (or role) allowed to approve it (403 otherwise). 409: the step did not fail,
was denied (a person said no), or runs.db is not vouched for by the audit log.
"""

from __future__ import annotations

from pydantic import BaseModel

from luminaguard.errors import LuminaGuardError
from luminaguard.scheduler import retries
from luminaguard.scheduler.decisions import NotAllowed
from luminaguard.server.http import ApiError, Call, Endpoint
from luminaguard.server.models import Retried, Retry, RetryMany
from luminaguard.server.tokens import Permission


def _retry(call: Call, step_ids: list[str] | None, reason: str | None) -> Retried:
    run_id = call.param("run_id")
    store = call.server.store
    if run_id not in store.run_states():
        raise ApiError(404, f"no run {run_id!r}")
    if step_ids is not None and (missing := set(step_ids) - set(store.steps(run_id))):
        raise ApiError(404, f"run {run_id!r} has no step {sorted(missing)[0]!r}")
    role = str(call.who.role) if call.who else None
    try:
        done = retries.retry(store, run_id, step_ids, call.name, reason, role)
    except NotAllowed as exc:
        raise ApiError(403, str(exc)) from None
    except LuminaGuardError as exc:
        raise ApiError(409, str(exc)) from None
    call.server.engine.schedule(run_id)
    return Retried(
        run_id=run_id, by=done.who, retried=list(done.retried), reopened=list(done.reopened)
    )


async def retry_one(call: Call) -> BaseModel:
    """Re-open one failed step and the steps it skipped; the run is driven again."""
    assert isinstance(call.body, Retry)
    return _retry(call, [call.param("step_id")], call.body.reason)


async def retry_many(call: Call) -> BaseModel:
    """Re-open the failed steps named (default: every one); the run is driven again."""
    assert isinstance(call.body, RetryMany)
    return _retry(call, call.body.steps, call.body.reason)


ENDPOINTS = (
    Endpoint(
        "POST",
        "/v1/runs/{run_id}/steps/{step_id}/retry",
        retry_one,
        Permission.APPROVE,
        "retry a failed step",
        body=Retry,
        response=Retried,
        errors=(403, 404, 409, 422),
    ),
    Endpoint(
        "POST",
        "/v1/runs/{run_id}/retry",
        retry_many,
        Permission.APPROVE,
        "retry failed steps of a run",
        body=RetryMany,
        response=Retried,
        errors=(403, 404, 409, 422),
    ),
)

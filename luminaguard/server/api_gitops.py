"""The GitOps endpoints: what the reconciler applied, how each object stands, reconcile now.

An object is ``Drifted`` when what runs differs from what was applied: a live warm pool
of another size, or with fewer clones ready or coming than it should keep; a policy in
force that is not the one applied. The source is ``Reconciling`` while a pass runs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from luminaguard.gitops.applied import AppliedObject, AppliedState, Condition
from luminaguard.policy.in_force import policy_hash
from luminaguard.server.http import ApiError, Call, Endpoint
from luminaguard.server.models import GitopsObject, GitopsSource, GitopsStatus
from luminaguard.server.service import Server
from luminaguard.server.tokens import Permission


def drift(server: Server, item: AppliedObject) -> str | None:
    """Why the object drifted from what was applied, or None."""
    if item.kind == "Pool":
        return _pool_drift(server.pools().get(item.name), item.spec)
    if item.kind == "Policy":
        in_force = server.policies.current()
        if in_force.revision and in_force.hashes.get(item.name) != policy_hash(item.spec):
            return f"the policy in force (revision {in_force.revision}) is not the one applied"
    return None


def _pool_drift(pool: Any, spec: dict[str, Any]) -> str | None:
    if pool is None:
        return None
    warm, maximum = int(spec.get("warm", 1)), int(spec.get("max", 8))
    if (pool.warm, pool.maximum) != (warm, maximum):
        return f"the live pool keeps {pool.warm} warm (max {pool.maximum}), not {warm} ({maximum})"
    coming = len(pool.ready) + pool.refilling
    if coming < warm:
        return f"{coming} of {warm} warm clones are ready or coming"
    return None


def _object(server: Server, item: AppliedObject) -> GitopsObject:
    why = drift(server, item)
    condition, reason = (Condition.DRIFTED, why) if why else (item.state, item.reason)
    return GitopsObject(
        kind=item.kind, name=item.name, condition=condition.value, reason=reason,
        revision=item.revision, path=item.path, applied=item.applied,
    )  # fmt: skip


async def status(call: Call) -> BaseModel:
    """The source, and each applied object with its condition."""
    server = call.server
    applied = AppliedState(server.store)
    source = applied.source()
    shown = None
    if source is not None:
        busy = server.controller is not None and server.controller.busy
        condition = Condition.RECONCILING if busy else source.state
        shown = GitopsSource(
            url=source.url, revision=source.revision, attempted=source.attempted,
            condition=condition.value, reason=source.reason, updated=source.updated,
        )  # fmt: skip
    objects = [_object(server, item) for item in applied.objects().values()]
    revision = server.policies.current().revision
    return GitopsStatus(source=shown, policies_revision=revision, objects=objects)


async def reconcile_now(call: Call) -> BaseModel:
    """Start a pass now (202: its outcome shows in the status)."""
    if call.server.controller is None:
        raise ApiError(409, "this server follows no source (serve --source)")
    call.server.controller.poke()
    return await status(call)


ENDPOINTS = (
    Endpoint(
        "GET", "/v1/gitops", status, Permission.READ,
        "the source and each applied object's condition", response=GitopsStatus,
    ),
    Endpoint(
        "POST", "/v1/gitops/reconcile", reconcile_now, Permission.ADMIN,
        "reconcile the source now", response=GitopsStatus, errors=(409,),
    ),
)  # fmt: skip

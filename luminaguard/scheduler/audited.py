"""What runs.db says, believed only with the audit record that vouches for it.

Anyone who can write runs.db can change a row; nobody without the audit key can write
a record that verifies. So the runner drives a run only when the whole log verifies,
takes the plan only when it hashes to the value audited at ``run.created``, and runs a
Red step only with an authentic ``approval.approved`` record for its exact action.
"""

from __future__ import annotations

from typing import Any

from luminaguard.errors import UsageError
from luminaguard.scheduler.audit import AuditRecord
from luminaguard.scheduler.store import RunRecord, RunStore, text_hash


def check_log(store: RunStore) -> None:
    """Refuse (UsageError naming the first bad record) unless the audit log verifies."""
    problems = store.audit.verify()
    if problems:
        raise UsageError(
            f"the audit log does not verify, so the state cannot be trusted: {problems[0]}"
            " (see `luminaguard audit verify`)"
        )


def created(store: RunStore, run_id: str) -> AuditRecord:
    """The run's authentic ``run.created`` record."""
    found = store.audit.records(run_id, event="run.created")
    if len(found) != 1 or not store.audit.authentic(found[0]):
        raise UsageError(f"run {run_id!r} has no authentic run.created audit record")
    return found[0]


def started_by(store: RunStore, run_id: str) -> dict[str, Any]:
    """Who started the run (name and login name), as audited."""
    return dict(created(store, run_id).data.get("started_by") or {})


def trusted_run(store: RunStore, run_id: str) -> RunRecord:
    """The stored run, refused unless its plan is the one audited when the run started."""
    run, text = store.run_and_plan_text(run_id)
    if text_hash(text) != created(store, run_id).data.get("stored_plan"):
        raise UsageError(
            f"run {run_id!r}: the stored plan is not the plan the run started with"
            " (runs.db was edited); refusing to drive it"
        )
    return run


def _authentic(
    store: RunStore, run_id: str, step_id: str, event: str, action_hash: str
) -> AuditRecord | None:
    for record in store.audit.records(run_id, step_id, event):
        if record.data.get("action_hash") == action_hash and store.audit.authentic(record):
            return record
    return None


def approval(store: RunStore, run_id: str, step_id: str, action_hash: str) -> AuditRecord | None:
    """The authentic ``approval.approved`` record of exactly this action, if any."""
    return _authentic(store, run_id, step_id, "approval.approved", action_hash)

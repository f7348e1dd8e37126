"""What runs.db says, believed only with the audit record that vouches for it.

Anyone who can write runs.db can change a row; nobody without the audit key can write
a record that verifies. So the runner drives a run only when the whole log verifies,
takes the plan only when it hashes to the value audited at ``run.created``, finds each
step in the state its latest audit record says, and runs a Red step only with an
authentic ``approval.approved`` record for its exact action.
"""

from __future__ import annotations

from typing import Any

from luminaguard.errors import UsageError
from luminaguard.scheduler.audit import AuditRecord
from luminaguard.scheduler.states import StepState
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
    """The stored run, refused unless its plan and backend are those audited at its start."""
    run, text = store.run_and_plan_text(run_id)
    record = created(store, run_id)
    if text_hash(text) != record.data.get("stored_plan"):
        raise UsageError(
            f"run {run_id!r}: the stored plan is not the plan the run started with"
            " (runs.db was edited); refusing to drive it"
        )
    if run.backend != record.data.get("backend"):
        raise UsageError(
            f"run {run_id!r}: its backend is {run.backend} in runs.db but"
            f" {record.data.get('backend')} in the audit log (runs.db was edited); refusing"
        )
    return run


def trusted_steps(store: RunStore, run_id: str) -> None:
    """``check_log`` then ``check_steps``: what a decision about a step may rely on."""
    check_log(store)
    check_steps(store, run_id)


_IMPLIED = {"step.started": StepState.RUNNING, "approval.requested": StepState.AWAITING_APPROVAL}


def _state_of(record: AuditRecord) -> str | None:
    """The step state a record moved its step to (None: it changed no step state)."""
    if record.event.startswith(("step.", "operator.")) and "state" in record.data:
        return str(record.data["state"])  # set_step
    if record.event in _IMPLIED:
        return _IMPLIED[record.event]
    if record.event.startswith("step."):
        return record.event.removeprefix("step.")  # an attempt's end: step.succeeded, ...
    return None


def check_steps(store: RunStore, run_id: str) -> None:
    """Refuse unless every step is in the state its latest audit record put it in.

    Each record relied on is checked for authenticity itself: a server verifies the log
    incrementally, so an edit inside its verified part is not found by ``check_log``.
    A failed or skipped step is pending again only by a person's retry record.
    """
    with store.snapshot():  # approve and deny may write meanwhile: read one state
        steps = store.steps(run_id)
        records = store.audit.records(run_id)
    audited, outputs = _audited_states(store, run_id, dict.fromkeys(steps, ""), records)
    for step_id, step in steps.items():
        if step.state != audited[step_id]:
            raise UsageError(
                f"run {run_id!r}: step {step_id} is {step.state} in runs.db but"
                f" {audited[step_id]} in the audit log (runs.db was edited); refusing to drive it"
            )
        if step.outputs and step.outputs != outputs.get(step_id):
            raise UsageError(
                f"run {run_id!r}: the outputs of step {step_id} in runs.db are not those"
                " in the audit log (runs.db was edited); refusing to drive it"
            )


_REOPENING = frozenset({"step.retried", "step.reopened"})


def _audited_states(
    store: RunStore, run_id: str, steps: dict[str, str], records: list[AuditRecord]
) -> tuple[dict[str, str], dict[str, Any]]:
    """Each step's state and outputs as its authentic audit records leave them."""
    audited: dict[str, str] = dict.fromkeys(steps, StepState.PENDING)
    outputs: dict[str, Any] = {}
    for record in records:
        if record.step_id not in audited:
            continue
        state = _state_of(record)
        relied_on = state is not None or "outputs" in record.data
        if relied_on and not store.audit.authentic(record):
            raise UsageError(
                f"run {run_id!r}: audit record {record.seq} of step {record.step_id} does not"
                " match its hash (edited); refusing to drive it (see `luminaguard audit verify`)"
            )
        if state is not None:
            _check_reopen(run_id, record, audited[record.step_id], state)
            audited[record.step_id] = state
        if "outputs" in record.data:
            outputs[record.step_id] = record.data["outputs"]
    return audited, outputs


def _check_reopen(run_id: str, record: AuditRecord, before: str, after: str) -> None:
    """Refuse a record that moves a failed or skipped step on, unless it is a retry."""
    ended = before in (StepState.FAILED, StepState.SKIPPED)
    if ended and after != before and record.event not in _REOPENING:
        raise UsageError(
            f"run {run_id!r}: audit record {record.seq} moves step {record.step_id} from"
            f" {before} to {after} without a retry; refusing to drive it"
        )


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


def request(store: RunStore, run_id: str, step_id: str, action_hash: str) -> AuditRecord | None:
    """The authentic ``approval.requested`` record of exactly this action (its card, expiry)."""
    found = None
    for record in store.audit.records(run_id, step_id, "approval.requested"):
        if record.data.get("action_hash") == action_hash and store.audit.authentic(record):
            found = record
    return found

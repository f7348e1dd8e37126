"""``approvals``, ``approve RUN STEP``, ``deny RUN STEP``, ``mark-done RUN STEP``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from luminaguard.errors import UsageError
from luminaguard.hostile_text import visible
from luminaguard.scheduler import audited
from luminaguard.scheduler.approvers import ApprovalTerms
from luminaguard.scheduler.store import ApprovalRecord, RunStore
from luminaguard.ui.exit_codes import INVALID, OK
from luminaguard.ui.session import Session, in_session
from luminaguard.ui.state import add_identity_option, add_state_option, identity


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the approval subcommands."""
    listing = commands.add_parser("approvals", help="list approval requests waiting for a decision")
    listing.add_argument(
        "--all", action="store_true", help="also decided, expired and superseded ones"
    )
    listing.add_argument("--json", action="store_true", help="print the requests as JSON")
    add_state_option(listing)
    listing.set_defaults(handler=list_requests)
    for name, handler, text in (
        ("approve", approve, "approve a Red step's exact action (or re-running an unknown step)"),
        ("deny", deny, "deny a Red step (or decline re-running an unknown step)"),
        ("mark-done", mark_done, "declare an unknown step done without running it again"),
    ):
        parser = commands.add_parser(name, help=text)
        parser.add_argument("run_id", metavar="RUN")
        parser.add_argument("step_id", metavar="STEP")
        add_identity_option(parser)
        add_state_option(parser)
        parser.set_defaults(handler=handler)


def _print_card(request: ApprovalRecord) -> None:
    card = request.card
    left = request.expires - time.time()
    where = visible(f"{request.run_id} {request.step_id}  [{request.state}]")
    print(f"{where}  expires in {max(left, 0):.0f}s")
    print(f"  action:    {visible(card.get('action'))}")
    print(f"  arguments: {visible(json.dumps(card.get('arguments'), sort_keys=True))}")
    rule = f"{card.get('policy')}/{card.get('rule')} ({card.get('rule_source')})"
    print(f"  rule:      {visible(rule)}")
    print(f"  reason:    {visible(card.get('reason'))}")
    print(f"  hash:      {visible(request.action_hash)}")
    terms = ApprovalTerms.from_card(card)
    if terms.approvers or terms.prevent_self_approval:
        who = ", ".join(terms.approvers) or "anyone"
        line = who + ("; not the run's starter" * terms.prevent_self_approval)
        print(f"  approvers: {visible(line)}")
    if card.get("diff"):
        diff = visible(card["diff"], multiline=True)
        print("  diff:\n" + "".join(f"    {line}\n" for line in diff.splitlines()))


def _as_audited(store: RunStore, request: ApprovalRecord) -> ApprovalRecord:
    """The request with the card and expiry of its audit record (runs.db may be edited)."""
    record = audited.request(store, request.run_id, request.step_id, request.action_hash)
    if record is None:
        raise UsageError(
            f"{request.run_id} {request.step_id}: the approval request has no authentic audit"
            " record (runs.db was edited); nothing shown"
        )
    card, expires = record.data.get("card") or {}, float(record.data.get("expires", 0))
    return dataclasses.replace(request, card=card, expires=expires)


@in_session
def list_requests(args: argparse.Namespace, session: Session) -> int:
    """Print pending (or all) requests with their cards, as audited."""
    store = session.store
    audited.check_log(store)
    requests = [_as_audited(store, r) for r in store.approvals(None if args.all else "pending")]
    if args.json:
        print(json.dumps([request.__dict__ for request in requests], indent=2, sort_keys=True))
        return OK
    if not requests:
        print("no approval requests waiting")
    for request in requests:
        _print_card(request)
    return OK


def _pending(store: RunStore, run_id: str, step_id: str) -> ApprovalRecord | None:
    steps = store.steps(store.run(run_id).id)
    if step_id not in steps:
        raise UsageError(f"run {run_id!r} has no step {step_id!r} (steps: {', '.join(steps)})")
    digest = steps[step_id].action_hash
    request = store.approval(run_id, step_id, digest) if digest else None
    return request if request and request.state == "pending" else None


def _state(store: RunStore, run_id: str, step_id: str) -> str:
    return store.steps(run_id)[step_id].state


def _check_may_decide(
    store: RunStore, run_id: str, step_id: str, who: str, approving: bool, digest: str | None
) -> None:
    """Refuse (nothing recorded) unless ``who`` may decide this step.

    The terms come from the audited request (of ``digest``, or the step's latest request
    when deciding about an unknown step), never from what runs.db says now.
    """
    requests = [
        record
        for record in store.audit.records(run_id, step_id, "approval.requested")
        if digest is None or record.data.get("action_hash") == digest
    ]
    if not requests:
        if digest is None:
            return  # never halted for approval: no terms
        raise UsageError(f"{step_id}: the approval request has no audit record; nothing recorded")
    if not store.audit.authentic(requests[-1]):
        raise UsageError(f"{step_id}: the audited approval request was altered; nothing recorded")
    terms = ApprovalTerms.from_card(requests[-1].data.get("card") or {})
    why = terms.refusal(who, audited.started_by(store, run_id), approving)
    if why is not None:
        raise UsageError(f"{step_id}: {why}; nothing recorded")


def _not_waiting(store: RunStore, args: argparse.Namespace) -> UsageError:
    state = _state(store, args.run_id, args.step_id)
    return UsageError(f"step {args.step_id!r} is not waiting for a decision (state: {state})")


@in_session
def approve(args: argparse.Namespace, session: Session) -> int:
    """Approve the pending request of the step, bound to its action hash."""
    store = session.store
    audited.trusted_steps(store, args.run_id)
    who = identity(args)
    request = _pending(store, args.run_id, args.step_id)
    digest = request.action_hash if request else None
    _check_may_decide(store, args.run_id, args.step_id, who, True, digest)
    if request is None:
        if _state(store, args.run_id, args.step_id) == "unknown":
            store.set_step(
                args.run_id,
                args.step_id,
                "pending",
                "operator.rerun",
                {"by": who, "reason": args.reason},
            )
            print(f"{args.step_id}: will run again on resume (approved by {who})")
            return OK
        raise _not_waiting(store, args)
    if time.time() > _as_audited(store, request).expires:
        store.decide_approval(request, "expired", "luminaguard", "no decision before the timeout")
        print(f"{args.step_id}: the request expired; the step is denied on resume")
        return INVALID
    store.decide_approval(request, "approved", who, args.reason)
    print(f"{args.step_id}: approved by {who} for action {request.action_hash[:19]}")
    print(f"next: luminaguard resume {args.run_id}")
    return OK


@in_session
def deny(args: argparse.Namespace, session: Session) -> int:
    """Deny the pending request (the run fails on resume), or decline an unknown step's re-run.

    A denial can only stop things, so it is recorded even when the log does not verify.
    """
    store = session.store
    who = identity(args)
    request = _pending(store, args.run_id, args.step_id)
    digest = request.action_hash if request else None
    _check_may_decide(store, args.run_id, args.step_id, who, False, digest)
    if request is not None:
        store.decide_approval(request, "denied", who, args.reason)
        store.set_step(
            args.run_id, args.step_id, "denied", "step.denied", {"by": who}, f"denied by {who}"
        )
    elif _state(store, args.run_id, args.step_id) == "unknown":
        store.set_step(
            args.run_id,
            args.step_id,
            "failed",
            "operator.declined",
            {"by": who},
            f"not re-run ({who})",
        )
    else:
        raise _not_waiting(store, args)
    print(f"{args.step_id}: denied by {who}; run: luminaguard resume {args.run_id}")
    return OK


@in_session
def mark_done(args: argparse.Namespace, session: Session) -> int:
    """Record an unknown step as succeeded: a person checked it took effect."""
    store = session.store
    audited.trusted_steps(store, args.run_id)
    who = identity(args)
    if _state(store, args.run_id, args.step_id) != "unknown":
        state = _state(store, args.run_id, args.step_id)
        raise UsageError(f"only an unknown step can be marked done (state: {state})")
    _check_may_decide(store, args.run_id, args.step_id, who, True, None)
    store.set_step(
        args.run_id,
        args.step_id,
        "succeeded",
        "operator.marked_done",
        {"by": who, "reason": args.reason},
    )
    print(f"{args.step_id}: marked done by {who}; run: luminaguard resume {args.run_id}")
    return OK

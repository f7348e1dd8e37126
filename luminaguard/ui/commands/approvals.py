"""``approvals``, ``approve [RUN STEP]``, ``deny RUN STEP``, ``mark-done RUN STEP``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from luminaguard.errors import UsageError
from luminaguard.hostile_text import visible
from luminaguard.scheduler import audited, decisions
from luminaguard.scheduler.approvers import ApprovalTerms
from luminaguard.scheduler.decisions import Verdict
from luminaguard.scheduler.states import ApprovalState
from luminaguard.scheduler.store import ApprovalRecord, RunStore
from luminaguard.server.claim import serving
from luminaguard.server.tokens import TOKENS_FILE, TokenFile
from luminaguard.ui.exit_codes import INVALID, OK
from luminaguard.ui.session import Session, in_session
from luminaguard.ui.state import add_identity_option, add_state_option, identity, open_store


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the approval subcommands."""
    listing = commands.add_parser("approvals", help="list approval requests waiting for a decision")
    listing.add_argument(
        "--all", action="store_true", help="also decided, expired and superseded ones"
    )
    listing.add_argument("--json", action="store_true", help="print the requests as JSON")
    add_state_option(listing)
    listing.set_defaults(handler=list_requests, read_only=True)
    for name, handler, text in (
        ("approve", approve, "approve a Red step's exact action (or re-running an unknown step)"),
        ("deny", deny, "deny a Red step (or decline re-running an unknown step)"),
        ("mark-done", mark_done, "declare an unknown step done without running it again"),
    ):
        parser = commands.add_parser(name, help=text)
        optional = "?" if name == "approve" else None  # none: the queue, on a terminal
        parser.add_argument("run_id", metavar="RUN", nargs=optional)
        parser.add_argument("step_id", metavar="STEP", nargs=optional)
        add_identity_option(parser)
        add_state_option(parser)
        if name == "approve":
            add_server_options(parser)
        parser.set_defaults(handler=approve_or_queue if name == "approve" else handler)


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--server URL`` and where its token is: ``--token-file`` or $LUMINAGUARD_TOKEN."""
    parser.add_argument(
        "--server",
        metavar="URL",
        help="open the queue of this `luminaguard serve` (decided as the token's name)",
    )
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help="a file holding the bearer token for --server (default: $LUMINAGUARD_TOKEN)",
    )


def server_token(args: argparse.Namespace) -> str | None:
    """The bearer token for ``--server``: the first line of ``--token-file``, or the env's."""
    if args.token_file is None:
        return os.environ.get("LUMINAGUARD_TOKEN")
    try:
        with open(args.token_file, encoding="utf-8") as file:
            token = file.readline(4096).strip()
    except OSError as exc:
        raise UsageError(f"approve: cannot read --token-file: {exc}") from None
    if not token:
        raise UsageError(f"approve: {args.token_file} holds no token")
    return token


def remote_queue(args: argparse.Namespace) -> int:
    """``approve --server URL``: the server's queue on this terminal."""
    if args.run_id is not None:
        raise UsageError("approve --server: opens the queue only; give no RUN or STEP")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("approve --server: the queue needs a terminal")
    from luminaguard.ui import tui  # Textual: loaded only for the queue
    from luminaguard.ui.remote import Remote

    remote = Remote(args.server, server_token(args))
    remote.call("GET", "/v1/approvals")  # a bad URL or token: said now, not in the queue
    tui.run_remote(remote)
    return OK


def approve_or_queue(args: argparse.Namespace) -> int:
    """``approve RUN STEP`` decides one step; ``approve`` alone opens the queue (a terminal)."""
    if getattr(args, "server", None):
        return remote_queue(args)
    if args.run_id is not None and args.step_id is not None:
        return approve(args)
    if args.run_id is not None:
        raise UsageError("approve: give RUN and STEP, or neither to open the queue")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("approve: give RUN and STEP (the queue needs a terminal)")
    store = open_store(args)
    try:
        audited.check_log(store)
        from luminaguard.ui import tui  # Textual: loaded only for the queue

        who = identity(args)
        tui.run(store, who, token_role(store, who))
    finally:
        store.close()
    return OK


def print_card(request: ApprovalRecord) -> None:
    """Print the request's card as inert text (give it as audited: ``decisions.as_audited``)."""
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
    approved = [str(name) for name in card.get("approved_by") or ()]
    if terms.min_approvals > 1 or approved:
        names = ", ".join(approved) or "nobody yet"
        line = f"{len(approved)} of {terms.min_approvals}: {names}"
        print(f"  approved:  {visible(line)}")
    if card.get("diff"):
        diff = visible(card["diff"], multiline=True)
        print("  diff:\n" + "".join(f"    {line}\n" for line in diff.splitlines()))


@in_session
def list_requests(args: argparse.Namespace, session: Session) -> int:
    """Print pending (or all) requests with their cards, as audited."""
    store = session.store
    audited.check_log(store)
    wanted = None if args.all else ApprovalState.PENDING
    requests = [decisions.as_audited(store, r) for r in store.approvals(wanted)]
    if args.json:
        print(json.dumps([request.__dict__ for request in requests], indent=2, sort_keys=True))
        return OK
    if not requests:
        print("no approval requests waiting")
    for request in requests:
        print_card(request)
    return OK


@in_session
def approve(args: argparse.Namespace, session: Session) -> int:
    """Approve the pending request of the step, bound to its action hash."""
    store, who = session.store, identity(args)
    done = decisions.approve(
        store, args.run_id, args.step_id, who, args.reason, role=token_role(store, who)
    )
    if done.verdict is Verdict.RERUN:
        print(f"{args.step_id}: will run again on resume (approved by {done.who})")
        return OK
    if done.verdict is Verdict.EXPIRED:
        print(f"{args.step_id}: the request expired; the step is denied on resume")
        return INVALID
    if done.verdict is Verdict.COUNTED:
        so_far = ", ".join(done.approved_by)
        print(
            f"{args.step_id}: approval by {done.who} counted for action {done.action_hash[:19]};"
            f" {done.needed} more needed (approved by {so_far})"
        )
        return OK
    print(f"{args.step_id}: approved by {done.who} for action {done.action_hash[:19]}")
    say_who_continues(session, args.run_id)
    return OK


def token_role(store: RunStore, who: str) -> str | None:
    """The role of ``who``'s token in the state folder's tokens.json, if it has one.

    A decision made here matches a ``role:NAME`` approver only through it: the name is
    the one the person gives, the role the one the server's tokens give that name.
    """
    if not (store.state_dir / TOKENS_FILE).exists():
        return None  # never served: no tokens, and no file made by asking
    return next((str(t.role) for t in TokenFile(store.state_dir).list() if t.name == who), None)


def say_who_continues(session: Session, run_id: str) -> None:
    """Say who continues the run: the server serving the folder, or the person."""
    server = serving(session.store.state_dir)
    if server is not None:
        print(f"the server (PID {server['pid']}, {visible(server['url'])}) continues the run")
    else:
        print(f"next: luminaguard resume {run_id}")


@in_session
def deny(args: argparse.Namespace, session: Session) -> int:
    """Deny the pending request (the run fails on resume), or decline an unknown step's re-run.

    A denial can only stop things, so it is recorded even when the log does not verify.
    """
    store, who = session.store, identity(args)
    role = token_role(store, who)
    done = decisions.deny(store, args.run_id, args.step_id, who, args.reason, role=role)
    print(f"{args.step_id}: denied by {done.who}; run: luminaguard resume {args.run_id}")
    return OK


@in_session
def mark_done(args: argparse.Namespace, session: Session) -> int:
    """Record an unknown step as succeeded: a person checked it took effect."""
    store, who = session.store, identity(args)
    role = token_role(store, who)
    done = decisions.mark_done(store, args.run_id, args.step_id, who, args.reason, role)
    print(f"{args.step_id}: marked done by {done.who}; run: luminaguard resume {args.run_id}")
    return OK

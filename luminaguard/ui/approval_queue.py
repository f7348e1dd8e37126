"""The approval queue as the terminal UI shows it: pending requests, their cards, decisions.

Nothing here imports Textual (the ``approve`` command loads the UI only when it opens
it). Every text taken from a card or the store passes through ``visible`` and is built
as a ``rich.text.Text``, never parsed as markup: a card may carry escape sequences or
``[bold]``-like text that must show as written.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text

from luminaguard.errors import LuminaGuardError
from luminaguard.hostile_text import visible
from luminaguard.scheduler import decisions
from luminaguard.scheduler.approvers import ApprovalTerms
from luminaguard.scheduler.audit import AuditRecord
from luminaguard.scheduler.decisions import Recorded
from luminaguard.scheduler.states import ApprovalState
from luminaguard.scheduler.store import ApprovalRecord, RunStore
from luminaguard.shell import parse_command

COLUMNS = ("age", "run", "step", "agent", "rule", "time left")


@dataclass(frozen=True)
class Queue:
    """The pending requests (as audited), those found expired (now recorded so), and unaudited."""

    pending: list[ApprovalRecord]
    expired: list[ApprovalRecord]
    unaudited: int = 0  # pending in runs.db without an authentic audit record: not shown


def span(seconds: float) -> str:
    """A duration as a person reads it: ``45s``, ``12m 05s``, ``3h 02m``."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def load(store: RunStore, now: float) -> Queue:
    """The pending requests, oldest first; those past their audited expiry are expired.

    An expiry is recorded as the ``approve`` command records it (``decisions.expire``):
    the step is then denied when its run resumes. A request without an authentic audit
    record is not shown (nothing about it can be trusted).
    """
    pending, expired, unaudited = [], [], 0
    for request in store.approvals(ApprovalState.PENDING):
        try:
            shown = decisions.as_audited(store, request)
        except LuminaGuardError:
            unaudited += 1
            continue
        if now <= shown.expires:
            pending.append(shown)
            continue
        with contextlib.suppress(LuminaGuardError):  # decided elsewhere: gone either way
            decisions.expire(store, request)
        expired.append(shown)
    return Queue(pending, expired, unaudited)


def row(request: ApprovalRecord, now: float) -> tuple[Text, ...]:
    """The queue's row of a request (``COLUMNS``), each cell plain text."""
    card = request.card
    cells = (
        span(now - request.requested),
        request.run_id,
        request.step_id,
        card.get("agent", "?"),
        f"{card.get('policy')}/{card.get('rule')}",
        span(request.expires - now),
    )
    return tuple(Text(visible(cell)) for cell in cells)


def matches(request: ApprovalRecord, text: str) -> bool:
    """Whether the filter ``text`` occurs in the request's run, step, agent, rule or action."""
    card = request.card
    fields = (request.run_id, request.step_id, card.get("agent"), card.get("rule"))
    haystack = " ".join(str(field) for field in (*fields, card.get("action"))).lower()
    return text.lower() in haystack


def parsed_command(command: str) -> list[str]:
    """The simple commands a ``run:`` command was parsed into, or why it could not be."""
    parsed = parse_command(command)
    if not parsed.decidable:
        return [f"cannot be decided: {parsed.undecidable} in {parsed.part}"]
    lines = []
    for simple in parsed.commands:
        words = json.dumps([simple.program, *simple.args])
        extra = [f"{r.operator} {r.target}" for r in simple.redirects]
        extra += [f"{name}={value}" for name, value in simple.assignments]
        extra += [f"via {wrapper}" for wrapper in simple.wrappers]
        lines.append(words + ("  (" + ", ".join(extra) + ")" if extra else ""))
    return lines


def _field(label: str, value: object) -> Text:
    line = Text(f"{label:<11}", style="bold")
    line.append(visible(value))
    return line


def _command_lines(card: dict[str, object]) -> list[Text]:
    arguments = card.get("arguments")
    command = arguments.get("command") if isinstance(arguments, dict) else None
    if card.get("kind") != "run" or not isinstance(command, str):
        return []
    lines = [_field("command:", command), Text("parsed:", style="bold")]
    lines += [Text("  " + visible(line)) for line in parsed_command(command)]
    return lines


def card(request: ApprovalRecord, now: float) -> RenderableType:
    """The card of a request: action, arguments, rule and reason, command or diff, time left."""
    data = request.card
    left = request.expires - now
    parts: list[RenderableType] = [
        Text(visible(f"{request.run_id} / {request.step_id}"), style="bold underline"),
        _field("action:", data.get("action")),
        _field("agent:", data.get("agent")),
        _field("arguments:", json.dumps(data.get("arguments"), sort_keys=True)),
        _field("rule:", f"{data.get('policy')}/{data.get('rule')} ({data.get('rule_source')})"),
        _field("reason:", data.get("reason")),
        *_command_lines(data),
        _field("hash:", request.action_hash),
        _field("time left:", span(left)),
    ]
    terms = ApprovalTerms.from_card(data)
    if terms.approvers or terms.prevent_self_approval:
        who = ", ".join(terms.approvers) or "anyone"
        parts.append(
            _field("approvers:", who + ("; not the run's starter" * terms.prevent_self_approval))
        )
    if terms.min_approvals > 1:
        parts.append(_field("approvals:", approvals(data)))
    if data.get("diff"):
        parts.append(Text("diff:", style="bold"))
        diff = visible(data["diff"], multiline=True)
        parts.append(Syntax(diff, "diff", theme="ansi_dark", background_color="default"))
    return Group(*parts)


def approvals(card: dict[str, object]) -> str:
    """How many of the approvals needed were given, and by whom: ``1 of 2 (alice)``."""
    needed = ApprovalTerms.from_card(card).min_approvals
    given = card.get("approved_by")
    names = [str(name) for name in given] if isinstance(given, list) else []
    return f"{len(names)} of {needed}" + (f" ({', '.join(names)})" if names else "")


def audit_trail(records: list[AuditRecord]) -> Text:
    """A run's audit records, one line each, as ``audit show`` prints them."""
    text = Text()
    for record in records:
        data = json.dumps(record.data, sort_keys=True)
        step = record.step_id or "-"
        text.append(visible(f"{record.seq:>6} {step} {record.event} {data[:160]}") + "\n")
    return text


Decide = Callable[[ApprovalRecord], Recorded]


def approver(
    store: RunStore, who: str, clock: Callable[[], float], role: str | None = None
) -> Decide:
    """Approve one request, bound to the action hash it was shown with.

    ``role``: the role of ``who``'s token, if any (it matches ``role:NAME`` approvers).
    """

    def approve(request: ApprovalRecord) -> Recorded:
        return decisions.approve(
            store, request.run_id, request.step_id, who, None, clock, request.action_hash, role
        )

    return approve


def outcome(request: ApprovalRecord, done: Recorded) -> str:
    """What a decision recorded, in one line."""
    where = f"{request.run_id} {request.step_id}"
    if done.verdict is decisions.Verdict.EXPIRED:
        return visible(f"{where}: the request expired; the step is denied on resume")
    if done.verdict is decisions.Verdict.COUNTED:
        return visible(
            f"{where}: approval by {done.who} counted; {done.needed} more needed"
            f" (approved by {', '.join(done.approved_by)})"
        )
    return visible(f"{where}: {done.verdict.name.lower()} by {done.who} ({done.action_hash[:19]})")

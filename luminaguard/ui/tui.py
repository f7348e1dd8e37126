"""``luminaguard approve`` on a terminal: the queue of pending Red steps and their cards.

The only module that imports Textual (the ``approve`` command imports it when it opens
the queue). It lives on the state folder: a timer polls the store's ``data_version``
every half second, so requests that arrive, are decided by another process or expire
show at once; each request found past its audited expiry is recorded as expired and
dropped. Every decision goes through ``decisions`` bound to the action hash the card
showed. Card texts are ``rich.text.Text`` (never markup), passed through ``visible``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from luminaguard.errors import LuminaGuardError
from luminaguard.hostile_text import visible
from luminaguard.scheduler import decisions
from luminaguard.scheduler.store import ApprovalRecord, RunStore
from luminaguard.ui import approval_queue as queue

POLL = 0.5


class DenyScreen(ModalScreen[str | None]):
    """Ask why a step is denied; Enter denies, Escape goes back."""

    BINDINGS = [Binding("escape", "cancel", "back")]

    def __init__(self, request: ApprovalRecord) -> None:
        super().__init__()
        self.request = request

    def compose(self) -> ComposeResult:
        """The question and the reason's input."""
        with Vertical(id="dialog"):
            where = visible(f"deny {self.request.run_id} {self.request.step_id}: why?")
            yield Static(Text(where))
            yield Input(placeholder="reason (recorded in the audit log)", id="reason")

    def on_mount(self) -> None:
        """Type the reason straight away."""
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Deny with this reason."""
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        """Go back without denying."""
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """List the steps about to be approved, each with its action hash; y approves them."""

    BINDINGS = [
        Binding("y", "answer(True)", "approve all"),
        Binding("n,escape", "answer(False)", "back"),
    ]

    def __init__(self, requests: list[ApprovalRecord]) -> None:
        super().__init__()
        self.requests = requests

    def compose(self) -> ComposeResult:
        """The steps and their hashes."""
        text = Text(
            visible(f"approve {len(self.requests)} pending steps of run {self.requests[0].run_id}?")
            + "\n"
        )
        for request in self.requests:
            text.append(
                visible(f"  {request.step_id}  {request.card.get('action')}  {request.action_hash}")
                + "\n"
            )
        text.append("y: approve each (bound to its hash)   n: back")
        with Vertical(id="dialog"):
            yield Static(text)

    def action_answer(self, answer: bool) -> None:
        """Close with the answer."""
        self.dismiss(answer)


class AuditScreen(ModalScreen[None]):
    """The run's audit trail; Escape closes it."""

    BINDINGS = [Binding("escape,q,t", "close", "back")]

    def __init__(self, trail: Text) -> None:
        super().__init__()
        self.trail = trail

    def compose(self) -> ComposeResult:
        """The records."""
        with VerticalScroll(id="dialog"):
            yield Static(self.trail)

    def action_close(self) -> None:
        """Back to the queue."""
        self.dismiss(None)


class ApprovalApp(App[None]):
    """The queue of pending requests across runs, and the card of the selected one."""

    TITLE = "LuminaGuard approvals"
    CSS = """
    #queue { height: 40%; }
    #card-box { height: 1fr; border-top: solid $accent; }
    #status { height: 1; }
    #filter { display: none; }
    #filter.shown { display: block; }
    ModalScreen { align: center middle; }
    #dialog { width: 90%; height: auto; max-height: 90%; border: thick $accent; padding: 1; }
    """
    BINDINGS = [
        Binding("a", "approve", "approve"),
        Binding("d", "deny", "deny"),
        Binding("A", "approve_run", "approve run"),
        Binding("t", "trail", "audit trail"),
        Binding("slash", "filter", "filter"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        store: RunStore,
        who: str,
        clock: Callable[[], float] = time.time,
        poll: float = POLL,
        role: str | None = None,
    ) -> None:
        super().__init__()
        self.store, self.who, self.clock, self.poll = store, who, clock, poll
        self.role = role  # of who's token, if any: it matches ``role:NAME`` approvers
        self.pending: list[ApprovalRecord] = []  # all of them
        self.requests: list[ApprovalRecord] = []  # those the filter lets through, as listed
        self.filter_text = ""
        # kept: the app's queries see only the screen on top (a dialog, when one is open)
        self.table: DataTable[Text] = DataTable(id="queue", cursor_type="row", zebra_stripes=True)
        self.card = Static(Text(""), id="card")
        self.status = Static(Text(""), id="status")
        self.filter_box = Input(placeholder="filter: run, step, agent, rule or action", id="filter")

    def compose(self) -> ComposeResult:
        """Queue, card, status line, filter input, keys."""
        yield self.table
        with VerticalScroll(id="card-box"):
            yield self.card
        yield self.status
        yield self.filter_box
        yield Footer()

    def on_mount(self) -> None:
        """Columns, first load, and the poll."""
        table = self.table
        for column in queue.COLUMNS:
            table.add_column(column, key=column)
        self.store.changed_elsewhere()
        self.reload()
        self.set_interval(self.poll, self.tick)

    # --- the queue -----------------------------------------------------------------------
    def tick(self) -> None:
        """Reload when another process wrote or a request expired, else refresh the times."""
        now = self.clock()
        changed = self.store.changed_elsewhere()
        if changed or any(now > request.expires for request in self.pending):
            self.reload()
            return
        table = self.table
        for request in self.requests:
            cells = queue.row(request, now)
            table.update_cell(self._key(request), "age", cells[0])
            table.update_cell(self._key(request), "time left", cells[-1])
        self.show_card()

    def reload(self) -> None:
        """Read the pending requests again; keep the selected one selected if still there."""
        now = self.clock()
        found = queue.load(self.store, now)
        if found.expired:
            names = ", ".join(f"{r.run_id} {r.step_id}" for r in found.expired)
            self.say(f"expired (denied on resume): {names}")
        if found.unaudited:
            self.say(
                f"{found.unaudited} requests not shown: no authentic audit record (runs.db edited?)"
            )
        selected = self.selected()
        self.pending = found.pending
        self.requests = [r for r in found.pending if queue.matches(r, self.filter_text)]
        table = self.table
        table.clear()
        for request in self.requests:
            table.add_row(*queue.row(request, now), key=self._key(request))
        keys = [self._key(r) for r in self.requests]
        if selected is not None and self._key(selected) in keys:
            table.move_cursor(row=keys.index(self._key(selected)))
        self.show_card()

    @staticmethod
    def _key(request: ApprovalRecord) -> str:
        return f"{request.run_id}\0{request.step_id}\0{request.action_hash}"

    def selected(self) -> ApprovalRecord | None:
        """The request under the cursor."""
        table = self.table
        if not self.requests or not 0 <= table.cursor_row < len(self.requests):
            return None
        return self.requests[table.cursor_row]

    def show_card(self) -> None:
        """Show the selected request's card."""
        request = self.selected()
        shown = (
            queue.card(request, self.clock()) if request else Text("no approval requests waiting")
        )
        self.card.update(shown)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The cursor moved: show that card."""
        self.show_card()

    def say(self, message: str) -> None:
        """Put a line in the status bar (as plain text)."""
        self.status.update(Text(visible(message)))

    # --- decisions -----------------------------------------------------------------------
    def _decide(self, request: ApprovalRecord, decide: queue.Decide) -> bool:
        try:
            self.say(queue.outcome(request, decide(request)))
        except LuminaGuardError as exc:
            self.say(f"{request.run_id} {request.step_id}: {exc}")
            return False
        return True

    def action_approve(self) -> None:
        """Approve the selected request, bound to its action hash."""
        request = self.selected()
        if request is not None:
            self._decide(request, queue.approver(self.store, self.who, self.clock, self.role))
            self.reload()

    def action_deny(self) -> None:
        """Ask why, then deny the selected request."""
        request = self.selected()
        if request is None:
            return

        def denied(reason: str | None) -> None:
            if reason is None:
                self.say("not denied")
                return

            def deny(r: ApprovalRecord) -> decisions.Recorded:
                return decisions.deny(
                    self.store, r.run_id, r.step_id, self.who, reason, r.action_hash, self.role
                )

            self._decide(request, deny)
            self.reload()

        self.push_screen(DenyScreen(request), denied)

    def action_approve_run(self) -> None:
        """List the run's pending steps with their hashes; on yes, approve each."""
        request = self.selected()
        if request is None:
            return
        found = queue.load(self.store, self.clock()).pending
        steps = [r for r in found if r.run_id == request.run_id]

        def confirmed(answer: bool | None) -> None:
            if not answer:
                self.say("nothing approved")
                return
            approve = queue.approver(self.store, self.who, self.clock, self.role)
            done = sum(self._decide(r, approve) for r in steps)
            if done == len(steps):
                self.say(f"{visible(request.run_id)}: approved {done} steps")
            self.reload()

        self.push_screen(ConfirmScreen(steps), confirmed)

    def action_trail(self) -> None:
        """Open the selected run's audit trail."""
        request = self.selected()
        if request is not None:
            records = self.store.audit.records(request.run_id)
            self.push_screen(AuditScreen(queue.audit_trail(records)))

    # --- filter --------------------------------------------------------------------------
    def action_filter(self) -> None:
        """Show the filter input."""
        box = self.filter_box
        box.add_class("shown")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Apply the filter and go back to the queue."""
        if event.input.id != "filter":
            return
        self.filter_text = event.value.strip()
        event.input.remove_class("shown")
        self.table.focus()
        self.reload()


def run(store: RunStore, who: str, role: str | None = None) -> None:
    """Open the queue on this terminal until the person quits (as ``who``, with ``role``)."""
    ApprovalApp(store, who, role=role).run()

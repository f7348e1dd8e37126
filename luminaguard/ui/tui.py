"""``luminaguard approve`` on a terminal: the queue of pending Red steps and questions, and cards.

The only module that imports Textual (the ``approve`` command imports it when it opens
the queue). It reads and decides through a ``Desk``: the state folder (``LocalDesk``: a
timer polls the store's ``data_version`` every half second, so requests and questions
that arrive, are decided elsewhere or expire show at once; each request found past its
audited expiry is recorded as expired and dropped) or a server (``RemoteDesk``). Every
decision is bound to the action hash the card showed. A question's card holds its form
(``question_form``), kept as typed while the same question stays selected; an answer is
checked with ``Form.check`` before it is sent. Card texts are ``rich.text.Text`` (never
markup), passed through ``visible``.
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
from luminaguard.scheduler.questions import QuestionRecord
from luminaguard.scheduler.store import ApprovalRecord, RunStore
from luminaguard.transport.forms import FormError
from luminaguard.ui import approval_queue as queue
from luminaguard.ui import question_queue as asked
from luminaguard.ui.desk import Desk, LocalDesk, where
from luminaguard.ui.question_form import DeclineScreen, QuestionForm
from luminaguard.ui.remote import Remote
from luminaguard.ui.remote_desk import RemoteDesk

POLL = 0.5
#: The keys of a question's card, shown under its message.
QUESTION_KEYS = "enter: fill in the form (escape: back)   a / enter in a box: answer   d: decline"
Item = ApprovalRecord | QuestionRecord


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
    """The queue of pending requests and questions across runs, and the selected one's card."""

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
        Binding("a", "answer", "answer"),
        Binding("d", "decline", "decline"),
        Binding("A", "approve_run", "approve run"),
        Binding("t", "trail", "audit trail"),
        Binding("slash", "filter", "filter"),
        Binding("escape", "to_queue", "back to the queue", show=False),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        store: RunStore | None,
        who: str,
        clock: Callable[[], float] = time.time,
        poll: float = POLL,
        role: str | None = None,
        desk: Desk | None = None,
    ) -> None:
        """The queue of ``store`` decided as ``who`` (``role``), or of ``desk`` when given."""
        super().__init__()
        if desk is None:
            assert store is not None, "a store or a desk"
            desk = LocalDesk(store, who, clock, role)
        self.desk, self.clock, self.poll = desk, clock, poll
        self.pending: list[ApprovalRecord] = []  # all of them
        self.requests: list[ApprovalRecord] = []  # those the filter lets through, as listed
        self.asked: list[QuestionRecord] = []  # all pending questions
        self.questions: list[QuestionRecord] = []  # those the filter lets through, as listed
        self.filter_text = ""
        # kept: the app's queries see only the screen on top (a dialog, when one is open)
        self.table: DataTable[Text] = DataTable(id="queue", cursor_type="row", zebra_stripes=True)
        self.card = Static(Text(""), id="card")
        self.form_box = Vertical(id="form-box")
        self.form: QuestionForm | None = None  # of the question shown, if one is
        self.form_of = ""  # the key of that question
        self.status = Static(Text(""), id="status")
        self.filter_box = Input(placeholder="filter: run, step, agent, rule or action", id="filter")

    def compose(self) -> ComposeResult:
        """Queue, card (and a question's form), status line, filter input, keys."""
        yield self.table
        with VerticalScroll(id="card-box"):
            yield self.card
            yield self.form_box
        yield self.status
        yield self.filter_box
        yield Footer()

    def on_mount(self) -> None:
        """Columns, first load, and the poll."""
        table = self.table
        for column in queue.COLUMNS:
            table.add_column(column, key=column)
        self.desk.changed()
        self.reload()
        self.set_interval(self.poll, self.tick)

    def on_unmount(self) -> None:
        """Let the desk go (a server's event stream)."""
        self.desk.close()

    # --- the queue -----------------------------------------------------------------------
    def items(self) -> list[Item]:
        """What the queue lists, in its order: the requests, then the questions."""
        return [*self.requests, *self.questions]

    def tick(self) -> None:
        """Reload when another process wrote or something expired, else refresh the times."""
        now = self.clock()
        changed = self.desk.changed()
        expiries = [r.expires for r in self.pending] + [q.expires for q in self.asked]
        if changed or any(now > expires for expires in expiries):
            self.reload()
            return
        table = self.table
        for item in self.items():
            cells = self._row(item, now)
            table.update_cell(self._key(item), "age", cells[0])
            table.update_cell(self._key(item), "time left", cells[-1])
        self.show_card()

    def reload(self) -> None:
        """Read the pending requests and questions again; keep the selected one if still there."""
        now = self.clock()
        try:
            found = self.desk.load(now)
        except LuminaGuardError as exc:
            self.say(f"not reloaded: {exc}")
            return
        for note in found.notes:
            self.say(note)
        selected = self.selected_item()
        self.pending, self.asked = found.requests, found.questions
        self.requests = [r for r in found.requests if queue.matches(r, self.filter_text)]
        self.questions = [q for q in found.questions if asked.matches(q, self.filter_text)]
        self._fill(now, None if selected is None else self._key(selected))

    def _fill(self, now: float, selected: str | None) -> None:
        table = self.table
        table.clear()
        for item in self.items():
            table.add_row(*self._row(item, now), key=self._key(item))
        keys = [self._key(item) for item in self.items()]
        if selected in keys:
            table.move_cursor(row=keys.index(selected))
        self.show_card()

    @staticmethod
    def _key(item: Item) -> str:
        if isinstance(item, QuestionRecord):
            return asked.key(item)
        return f"{item.run_id}\0{item.step_id}\0{item.action_hash}"

    @staticmethod
    def _row(item: Item, now: float) -> tuple[Text, ...]:
        if isinstance(item, QuestionRecord):
            return asked.row(item, now)
        return queue.row(item, now)

    def selected_item(self) -> Item | None:
        """The request or question under the cursor."""
        items, row = self.items(), self.table.cursor_row
        return items[row] if items and 0 <= row < len(items) else None

    def selected(self) -> ApprovalRecord | None:
        """The request under the cursor (None on a question)."""
        item = self.selected_item()
        return item if isinstance(item, ApprovalRecord) else None

    def selected_question(self) -> QuestionRecord | None:
        """The question under the cursor (None on a request)."""
        item = self.selected_item()
        return item if isinstance(item, QuestionRecord) else None

    def show_card(self) -> None:
        """Show the selected item's card (a question's with its form)."""
        item, now = self.selected_item(), self.clock()
        if isinstance(item, QuestionRecord):
            self.card.update(asked.card(item, now).append("\n\n" + QUESTION_KEYS, style="dim"))
        elif item is not None:
            self.card.update(queue.card(item, now))
        else:
            self.card.update(Text("no approval requests waiting"))
        self._show_form(item if isinstance(item, QuestionRecord) else None)

    def _show_form(self, question: QuestionRecord | None) -> None:
        """Mount the question's form (kept as typed while the same question stays selected)."""
        shown = "" if question is None else asked.key(question)
        if shown == self.form_of:
            return
        self.form_box.remove_children()
        self.form, self.form_of = None, shown
        if question is not None:
            self.form = QuestionForm(question.form)
            self.form_box.mount(self.form)
        self.refresh_bindings()  # a question's keys, or a request's

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Request keys on a request, question keys on a question."""
        if action in ("approve", "deny", "approve_run"):
            return self.selected_question() is None
        if action in ("answer", "decline"):
            return self.selected_question() is not None
        return True

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The cursor moved: show that card."""
        self.show_card()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a question: into its form."""
        if self.selected_question() is not None and self.form is not None:
            editors = self.form.editors()
            if editors:
                editors[0].focus()

    def action_to_queue(self) -> None:
        """Back from a question's form to the queue."""
        self.table.focus()

    def say(self, message: str) -> None:
        """Put a line in the status bar (as plain text)."""
        self.status.update(Text(visible(message)))

    # --- decisions -----------------------------------------------------------------------
    def _decide(self, request: ApprovalRecord, decide: Callable[[ApprovalRecord], str]) -> bool:
        try:
            self.say(decide(request))
        except LuminaGuardError as exc:
            self.say(f"{request.run_id} {request.step_id}: {exc}")
            return False
        return True

    def action_approve(self) -> None:
        """Approve the selected request, bound to its action hash."""
        request = self.selected()
        if request is not None:
            self._decide(request, self.desk.approve)
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
            self._decide(request, lambda r: self.desk.deny(r, reason))
            self.reload()

        self.push_screen(DenyScreen(request), denied)

    def action_approve_run(self) -> None:
        """List the run's pending steps with their hashes; on yes, approve each."""
        request = self.selected()
        if request is None:
            return
        steps = [r for r in self.pending if r.run_id == request.run_id]

        def confirmed(answer: bool | None) -> None:
            if not answer:
                self.say("nothing approved")
                return
            done = sum(self._decide(r, self.desk.approve) for r in steps)
            if done == len(steps):
                self.say(f"{visible(request.run_id)}: approved {done} steps")
            self.reload()

        self.push_screen(ConfirmScreen(steps), confirmed)

    # --- questions ---------------------------------------------------------------------
    def action_answer(self) -> None:
        """Answer the selected question with its form as filled in, once the form accepts it."""
        question, form = self.selected_question(), self.form
        if question is None or form is None:
            return
        try:
            self.say(self.desk.answer(question, question.form.check(form.content())))
        except FormError as exc:
            self.say(f"{where(question)}: not answered: {exc}")
            return
        except LuminaGuardError as exc:
            self.say(f"{where(question)}: {exc}")
        self.table.focus()
        self.reload()

    def action_decline(self) -> None:
        """Ask why (optional), then decline the selected question."""
        question = self.selected_question()
        if question is None:
            return

        def declined(reason: str | None) -> None:
            if reason is None:
                self.say("not declined")
                return
            try:
                self.say(self.desk.decline(question, reason or None))
            except LuminaGuardError as exc:
                self.say(f"{where(question)}: {exc}")
            self.table.focus()
            self.reload()

        what = f"the question of {question.server} ({where(question)})"
        self.push_screen(DeclineScreen(what), declined)

    def action_trail(self) -> None:
        """Open the selected run's audit trail."""
        item = self.selected_item()
        if item is None:
            return
        try:
            trail = self.desk.trail(item.run_id)
        except LuminaGuardError as exc:
            self.say(f"{item.run_id}: no audit trail: {exc}")
            return
        self.push_screen(AuditScreen(trail))

    # --- filter --------------------------------------------------------------------------
    def action_filter(self) -> None:
        """Show the filter input."""
        box = self.filter_box
        box.add_class("shown")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Apply the filter and go back to the queue; Enter in a question's form answers."""
        if event.input.id != "filter":
            if self.form is not None and event.input in self.form.editors():
                self.action_answer()
            return
        self.filter_text = event.value.strip()
        event.input.remove_class("shown")
        self.table.focus()
        self.reload()


def run(store: RunStore, who: str, role: str | None = None) -> None:
    """Open the queue on this terminal until the person quits (as ``who``, with ``role``)."""
    ApprovalApp(store, who, role=role).run()


def run_remote(remote: Remote) -> None:
    """Open a server's queue on this terminal until the person quits (as the token's name)."""
    desk = RemoteDesk(remote)
    desk.start()
    app = ApprovalApp(None, "", desk=desk)
    app.title = f"LuminaGuard approvals at {visible(remote.url)}"
    app.run()

"""The form of a question from a tool, as Textual widgets, and the dialog asking why one declines.

One widget per field of the ``Form``: an ``Input`` for a string, number or integer
(typed and bounded where Textual allows), a ``Checkbox`` for a boolean, a ``Select``
for one choice and a ``SelectionList`` for several; a required field is marked ``*``.
``QuestionForm.content`` reads the widgets into the answer ``Form.check`` is given
(``FormError`` names a field whose text is not of its kind). Every text from the
server -- titles, descriptions, choices -- is ``visible`` text, never markup.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Select, SelectionList, Static

from luminaguard.hostile_text import visible
from luminaguard.transport.forms import Field, Form, Value


def label(field: Field) -> Text:
    """A field's label: its title (or name), ``*`` if required, its bounds, its description."""
    text = Text(visible(field.title or field.name), style="bold")
    if field.required:
        text.append(" *", style="bold red")
    if field.title:
        text.append(visible(f" ({field.name})"), style="dim")
    bounds = _bounds(field)
    if bounds:
        text.append(f"  {bounds}", style="dim")
    if field.description:
        text.append("\n" + visible(field.description), style="italic")
    return text


def _bounds(field: Field) -> str:
    low, high = field.minimum, field.maximum
    if low is None and high is None:
        return ""
    unit = {"string": " characters", "choices": " choices"}.get(field.kind, "")
    shown = [f"{bound:g}" if bound is not None else "" for bound in (low, high)]
    if low is None:
        return f"at most {shown[1]}{unit}"
    if high is None:
        return f"at least {shown[0]}{unit}"
    return f"{shown[0]} to {shown[1]}{unit}"


def _input(field: Field, ident: str) -> Input:
    kinds = {"integer": "integer", "number": "number"}
    longest = int(field.maximum) if field.kind == "string" and field.maximum else 0
    return Input(
        value="" if field.default is None else str(field.default),
        type=kinds.get(field.kind, "text"),  # type: ignore[arg-type]
        max_length=longest,
        id=ident,
    )


def widget(field: Field, ident: str) -> Widget:
    """The widget that edits one field, with the field's default."""
    if field.kind == "boolean":
        return Checkbox(Text(visible(field.title or field.name)), bool(field.default), id=ident)
    if field.kind == "choice":
        options = [(Text(visible(choice)), choice) for choice in field.choices]
        chosen = field.default if isinstance(field.default, str) else Select.NULL
        return Select(options, value=chosen, id=ident)
    if field.kind == "choices":
        default = field.default if isinstance(field.default, list) else []
        picks = [(Text(visible(c)), c, c in default) for c in field.choices]
        return SelectionList[str](*picks, id=ident)
    return _input(field, ident)


def read(field: Field, edits: Widget) -> Value:
    """The value a widget holds for its field; None for nothing given."""
    if isinstance(edits, Checkbox):
        return edits.value
    if isinstance(edits, Select):
        value = edits.value
        return None if value is Select.NULL else str(value)
    if isinstance(edits, SelectionList):
        picked = [str(value) for value in edits.selected]
        return picked or None
    assert isinstance(edits, Input)
    if edits.value == "" or (field.kind != "string" and not edits.value.strip()):
        return None
    return field.from_text(edits.value)


class QuestionForm(Vertical):
    """The widgets of a question's form, in the server's order."""

    DEFAULT_CSS = """
    QuestionForm { height: auto; }
    QuestionForm Static.label { margin-top: 1; }
    QuestionForm SelectionList { height: auto; max-height: 8; }
    """

    def __init__(self, form: Form, id: str | None = None) -> None:
        super().__init__(id=id)
        self.form = form

    def compose(self) -> ComposeResult:
        """A label and a widget for each field."""
        for index, field in enumerate(self.form.fields):
            yield Static(label(field), classes="label")
            yield widget(field, f"field-{index}")

    def editors(self) -> list[Widget]:
        """The widgets, one per field, in order."""
        return [self.query_one(f"#field-{i}") for i in range(len(self.form.fields))]

    def content(self) -> dict[str, Value]:
        """The answer as given (``FormError`` if a typed text is not of its field's kind)."""
        given = {f.name: read(f, w) for f, w in zip(self.form.fields, self.editors(), strict=True)}
        return {name: value for name, value in given.items() if value is not None}


class DeclineScreen(ModalScreen[str | None]):
    """Ask why a question is declined (optional); Enter declines, Escape goes back."""

    BINDINGS = [Binding("escape", "back", "back")]

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        """What is declined and the reason's input."""
        with Vertical(id="dialog"):
            yield Static(Text(visible(f"decline {self.what}: why? (optional)")))
            yield Input(placeholder="reason (the server is told only 'decline')", id="reason")

    def on_mount(self) -> None:
        """Type the reason straight away."""
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Decline with this reason (empty: none)."""
        event.stop()
        self.dismiss(event.value.strip())

    def action_back(self) -> None:
        """Go back without declining."""
        self.dismiss(None)

r"""Templates in ``run:`` commands: every value becomes exactly one shell word.

The template is rendered with a marker in place of each ``{{ ... }}`` value; the text is
parsed with the shell grammar; each marker is then replaced by its value quoted for the
place it stands in: unquoted (``shlex.quote``), inside double quotes (``\\``, ``$``,
backquote and ``"`` escaped) or inside single quotes (``'`` closed, escaped, reopened).
A value in a here-document, a comment or a ``$'...'`` string cannot be placed safely
and is refused. A value is data: it can never end a word, start a command or expand.
A value holding a NUL byte (a step's output, say) is refused: no command can hold one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

_PARSER = Parser(Language(tree_sitter_bash.language()))
_MARK = "lgv" + secrets.token_hex(6)
_MARKER = re.compile(_MARK + r"(\d+)z")
_VALUES: ContextVar[list[str] | None] = ContextVar("command_template_values", default=None)
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"})
_SHELL_NAMES = frozenset(name.encode() for name in _SHELLS)
_UNSAFE = {
    "expansion": "a parameter expansion",
    "simple_expansion": "a parameter expansion",
    "command_substitution": "a command substitution",
    "process_substitution": "a process substitution",
    "arithmetic_expansion": "an arithmetic expansion",
    "heredoc_body": "a here-document",
    "heredoc_content": "a here-document",
    "comment": "a comment",
    "ansi_c_string": "a $'...' string",
    "translated_string": 'a $"..." string',
}


#: Where each command's first word naming a shell starts, by command node (in one text).
_Shells = dict[tuple[int, int, int], int | None]


class PlacementError(ValueError):
    """A template value stands where it cannot be quoted as one word."""


def marker(value: Any) -> str:
    """jinja2 ``finalize``: while a command renders, each value becomes a numbered marker."""
    values = _VALUES.get()
    if values is None:
        return value if isinstance(value, str) else str(value)
    values.append(value if isinstance(value, str) else _plain(value))
    return f"{_MARK}{len(values) - 1}z"


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _double_quoted(value: str) -> str:
    return re.sub(r'([\\$`"])', r"\\\1", value)


def _single_quoted(value: str) -> str:
    return value.replace("'", "'\\''")


def _unquoted(value: str) -> str:
    """Always quoted, even when plain: ``LANG=C`` unquoted would be an assignment."""
    return "'" + _single_quoted(value) + "'"


def _in_shell_arguments(node: Node | None) -> bool:
    """Whether ``node`` is in an argument given to a shell (its ``-c`` script is code)."""
    while node is not None and node.type != "command":
        child, node = node, node.parent
    if node is None:
        return False
    for word in node.named_children:
        if word.start_byte >= child.start_byte:
            return False
        if _names_shell(word):  # s\h and 's'h are sh
            return True
    return False


def render_command(render: Callable[[], str]) -> str:
    """Call ``render`` (a jinja2 render using ``marker`` as finalize) and quote each value."""
    values: list[str] = []
    token = _VALUES.set(values)
    try:
        text = render()
    finally:
        _VALUES.reset(token)
    if not values:
        return text
    return place(text, values)


def place(text: str, values: list[str]) -> str:
    """Replace each marker in ``text`` by its value, quoted for where it stands.

    Where each marker stands depends on the text alone, never on the values: inside
    ``placements_kept`` (a compile), it is found once per text and reused for the same
    text with other values (a template used by many steps, each with its own outputs).
    """
    pieces: list[str] = []
    position = 0
    for start, end, index, quote in _kept(text):
        if isinstance(quote, str):
            raise PlacementError(quote)
        if "\0" in values[index]:  # a command is C strings: no quoting can hold a NUL
            raise PlacementError("a value holds a NUL byte, which no command can hold")
        pieces += [text[position:start], quote(values[index])]
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


#: A marker's start and end in the text, its value's number, and how to quote the value
#: there (or, last, why no value can stand there).
_Placement = tuple[int, int, int, Callable[[str], str] | str]


#: Each text's placements, by the whole text (no two texts share), while kept.
_KEPT: ContextVar[dict[str, tuple[_Placement, ...]] | None] = ContextVar(
    "command_template_placements", default=None
)


@contextmanager
def placements_kept() -> Iterator[None]:
    """Inside, each text's placements are found once and kept; dropped on leaving."""
    token = _KEPT.set({})
    try:
        yield
    finally:
        _KEPT.reset(token)


def _kept(text: str) -> tuple[_Placement, ...]:
    kept = _KEPT.get()
    if kept is None:
        return _placements(text)
    found = kept.get(text)
    if found is None:
        found = kept[text] = _placements(text)
    return found


def _placements(text: str) -> tuple[_Placement, ...]:
    """Where each marker of ``text`` stands, in order, up to the first one misplaced."""
    source = text.encode("utf-8", "surrogateescape")
    root = _PARSER.parse(source).root_node
    shells: _Shells = {}
    found: list[_Placement] = []
    for marker_ in _MARKER.finditer(text):
        before = text[: marker_.start()]
        start = marker_.start() if len(source) == len(text) else len(_bytes(before))
        node = root.descendant_for_byte_range(start, start + len(marker_.group(0)))
        try:
            quote = _misplaced(before) or _placed(_ancestors(node), shells)
        except PlacementError as exc:
            quote = str(exc)
        found.append((marker_.start(), marker_.end(), int(marker_.group(1)), quote))
        if isinstance(quote, str):
            break
    return tuple(found)


def _misplaced(before: str) -> str | None:
    """Why no value can follow ``before`` (a backslash, a $), if it cannot."""
    if (len(before) - len(before.rstrip("\\"))) % 2:
        return "a template value cannot follow a backslash in a run: command"
    if before.endswith(("$", "${")):
        return "a template value cannot follow a $ in a run: command"
    return None


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _ancestors(node: Node | None) -> list[Node]:
    """``node`` and every node above it, up to the root."""
    chain: list[Node] = []
    while node is not None:
        chain.append(node)
        node = node.parent
    return chain


def _placed(chain: list[Node], shells: _Shells) -> Callable[[str], str]:
    """How to quote a value found inside ``chain[0]`` (the smallest node around its marker).

    PlacementError if the value is given to a shell (``_in_shell_arguments``) or stands
    anywhere inside an expansion (it would be read again). One walk up from the value
    for every check, and each command's words are read once (``shells``), not per value.
    """
    types = [node.type for node in chain]
    if "command" in types:
        at = types.index("command")
        if at == 0:  # no child of the command above the value: as ``_in_shell_arguments``
            given = _in_shell_arguments(chain[0])
        else:
            first = _first_shell(chain[at], shells)
            given = first is not None and first < chain[at - 1].start_byte
        if given:
            raise PlacementError(
                "a template value cannot be given to a shell in a run: command (it would be "
                "code there); pass it to the program that needs it"
            )
    for kind in types:  # anywhere inside an expansion, the value would be read again
        if kind in _UNSAFE:
            raise PlacementError(
                f"a template value cannot be placed in {_UNSAFE[kind]} of a run: command"
            )
    for kind in types:
        if kind in ("string", "string_content"):
            return _double_quoted
        if kind == "raw_string":
            return _single_quoted
        if kind in ("word", "concatenation", "command", "program", "number"):
            return _unquoted
    return _unquoted


def _first_shell(command: Node, shells: _Shells) -> int | None:
    """Where the first word of ``command`` naming a shell starts (None if no word does)."""
    key = (command.id, command.start_byte, command.end_byte)  # one node: the same answer
    if key not in shells:
        shells[key] = next(
            (word.start_byte for word in command.named_children if _names_shell(word)), None
        )
    return shells[key]


def _names_shell(word: Node) -> bool:
    """Whether ``word``, its quotes and backslashes dropped, names a shell: 's'h is sh.

    Read as bytes: a backslash, quote or slash is never part of another character in
    UTF-8, and a shell's name is ASCII, so this is what the decoded text would say.
    """
    written = (word.text or b"").translate(None, b"\\'\"")
    return written[written.rfind(b"/") + 1 :] in _SHELL_NAMES

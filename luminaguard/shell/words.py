"""Reducing a shell word (a node of tree-sitter-bash's tree) to the plain text it stands for.

A word is decidable when the shell will pass exactly that text to the program, whatever
runs before it and whatever files exist: quotes and backslashes are removed. Everything
whose value only the run can tell raises ``CannotDecide``: command, process and
arithmetic substitution, every parameter expansion (even a plain ``$NAME``: dash splits
it on ``$IFS`` and drops it when empty, so ``find .$IFS-delete`` is ``find . -delete``),
pathname (``*``, ``?``, ``[...]``), brace and tilde expansion, ``$'...'`` strings, and a
newline outside quotes (the grammar and dash end words differently there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tree_sitter import Node

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_GLOB = re.compile(r"[*?]|\[.*\]")
_BRACES = re.compile(r"\{[^{}]*(,|\.\.)[^{}]*\}")
_ESCAPED = re.compile(r"\\.", re.DOTALL)
#: Characters after which a word needs a closer look (escapes, expansions, newlines).
_SPECIAL = re.compile(r"[\\*?\[{~\n]")
_DQ_ESCAPES = {"$", "`", '"', "\\", "\n"}
_SUBSTITUTIONS = {
    "command_substitution": "command substitution",
    "process_substitution": "process substitution",
    "arithmetic_expansion": "arithmetic expansion",
    "ansi_c_string": "a $'...' string",
    "translated_string": 'a $"..." string',
}


class CannotDecide(Exception):
    """Only the run can tell what this part of the command does."""

    def __init__(self, what: str, part: str) -> None:
        super().__init__(f"{what}: {part}")
        self.what = what
        self.part = part


def text(node: Node) -> str:
    """The source text of a node."""
    return (node.text or b"").decode("utf-8", "surrogateescape")


@dataclass
class _Word:
    value: str = ""
    unquoted: str = ""  # the raw unquoted text, quoted parts blanked: where expansions live

    def add(self, value: str, unquoted: str) -> None:
        self.value += value
        self.unquoted += unquoted


def _unescape(raw: str) -> str:
    r"""An unquoted word's text with backslash escapes removed (``\\<newline>`` joins)."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    chars = iter(raw)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, "")
        if following != "\n":
            out.append(following)
    return "".join(out)


def _unescape_double(raw: str) -> str:
    r"""Text inside double quotes: a backslash escapes only ``$ ` " \\`` and newline."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw) and raw[i + 1] in _DQ_ESCAPES:
            if raw[i + 1] != "\n":
                out.append(raw[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _escaped_blank(raw: str) -> str:
    r"""``raw`` with escaped characters blanked, so that ``\\*`` is not taken for a glob."""
    return _ESCAPED.sub("__", raw) if "\\" in raw else raw


class WordReader:
    """Reads the words of one script."""

    def value(self, node: Node) -> str:
        """The plain text of a word node, or ``CannotDecide``."""
        if node.type in ("word", "number"):  # the common case: one unquoted word
            raw = text(node)  # (what ``_add`` makes of it, when nothing needs a closer look)
            if not _SPECIAL.search(raw):
                return raw
        word = _Word()
        self._add(node, word)
        if _SPECIAL.search(word.unquoted):
            self._check_expansions(word.unquoted, node)
        return word.value

    def _check_expansions(self, unquoted: str, node: Node) -> None:
        if "\n" in unquoted:
            raise CannotDecide("a newline inside a word", text(node))
        if _GLOB.search(unquoted):
            raise CannotDecide(
                "pathname expansion (files in the sandbox decide the words)", text(node)
            )
        if _BRACES.search(unquoted):
            raise CannotDecide("brace expansion", text(node))
        if unquoted.startswith("~"):
            raise CannotDecide("tilde expansion", text(node))

    def _add(self, node: Node, word: _Word) -> None:
        kind = node.type
        if kind in ("word", "number", "variable_name", "test_operator"):
            raw = text(node)
            word.add(_unescape(raw), _escaped_blank(raw))
        elif kind == "raw_string":
            quoted = text(node)[1:-1]
            word.add(quoted, "_" * len(quoted))
        elif kind == "string":
            self._string(node, word)
        elif kind == "concatenation":
            for child in node.children:
                self._add(child, word)
        elif kind in ("simple_expansion", "expansion"):
            variable = self.variable(node)
            word.add(variable, "_" * len(variable))
        elif kind in _SUBSTITUTIONS:
            raise CannotDecide(_SUBSTITUTIONS[kind], text(node))
        else:
            raise CannotDecide(f"a {kind.replace('_', ' ')} in a word", text(node))

    def _string(self, node: Node, word: _Word) -> None:
        position = node.start_byte + 1
        source = node.text or b""
        base = node.start_byte
        for child in node.named_children:
            gap = source[position - base : child.start_byte - base].decode(
                "utf-8", "surrogateescape"
            )
            word.add(_unescape_double(gap), "_" * len(gap))
            if child.type == "string_content":
                content = _unescape_double(text(child))
                word.add(content, "_" * len(content))
            elif child.type in ("simple_expansion", "expansion"):
                raw = text(child)  # tree-sitter may start the node at the blank before it
                variable = raw[: len(raw) - len(raw.lstrip())] + self.variable(child)
                word.add(variable, "_" * len(variable))
            elif child.type in _SUBSTITUTIONS:
                raise CannotDecide(_SUBSTITUTIONS[child.type], text(child).strip())
            else:
                raise CannotDecide(f"a {child.type.replace('_', ' ')} in a string", text(child))
            position = child.end_byte
        tail = source[position - base : len(source) - 1].decode("utf-8", "surrogateescape")
        word.add(_unescape_double(tail), "_" * len(tail))

    def variable(self, node: Node) -> str:
        """Never decidable: only the run knows a variable's value (write a template)."""
        written = text(node).strip()
        name = written[2:-1] if written.startswith("${") else written[1:]
        what = "a variable" if _NAME.match(name) else "a parameter expansion"
        raise CannotDecide(f"{what}, whose value only the run knows", written)

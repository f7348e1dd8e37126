"""Parsing a ``run:`` command with tree-sitter-bash into the simple commands it runs.

Compound commands (newline, ``;``, ``&&``, ``||``, ``|``, ``&``, subshells, brace groups,
``if``/``for``/``while``/``case``) are flattened into their simple commands; redirections
of a compound apply to every command inside it. Wrappers (``env``, ``timeout``, ``nice``,
``nohup``, ``command``, ``time``, ``stdbuf``) are unwrapped and ``sh -c``/``bash -c``
scripts parsed in turn (see ``unwrap``). Whatever cannot be reduced to plain words makes
the whole command undecidable. Unknown syntax is undecidable too: deny by default.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

from luminaguard.shell.command import ParsedCommand, Redirect, SimpleCommand
from luminaguard.shell.unwrap import MAX_DEPTH, Unwrapper
from luminaguard.shell.words import CannotDecide, WordReader, text

_LANGUAGE = Language(tree_sitter_bash.language())
_PARSER = Parser(_LANGUAGE)

#: Nodes whose named children are statements, walked in order.
_CONTAINERS = frozenset(
    {
        "program",
        "list",
        "pipeline",
        "subshell",
        "compound_statement",
        "do_group",
        "negated_command",
        "if_statement",
        "elif_clause",
        "else_clause",
        "while_statement",
    }
)
_UNDECIDABLE = {
    "function_definition": "a function definition",
    "c_style_for_statement": "an arithmetic for loop",
    "arithmetic_expansion": "arithmetic expansion",
    "command_substitution": "command substitution",
    "process_substitution": "process substitution",
}
_ASSIGNING_PROGRAMS = frozenset({"read", "getopts", "mapfile", "readarray", "printf"})
_CACHE = 8192
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _assigned_names(root: Node) -> frozenset[str]:
    """Every variable name the script may set (assignments, loops, ``read`` and friends)."""
    names: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type in ("variable_assignment", "for_statement"):
            name = node.child_by_field_name("name") or node.child_by_field_name("variable")
            if name is not None:
                names.add(text(name))
        elif node.type in ("command", "unset_command"):
            first = node.named_children[0] if node.named_children else None
            if node.type == "unset_command" or (
                first is not None and text(first) in _ASSIGNING_PROGRAMS
            ):
                names.update(text(child) for child in node.named_children[1:])
        stack.extend(node.children)
    return frozenset(names)


class _Walker:
    """Collects the simple commands of one parsed script."""

    def __init__(self, source: str, depth: int) -> None:
        self.source = source
        self.depth = depth
        self.commands: list[SimpleCommand] = []
        self.reader = WordReader(())

    def walk_root(self, root: Node) -> None:
        if root.has_error:
            raise CannotDecide("the command does not parse as a shell command", self.source)
        self.reader = WordReader(_assigned_names(root))
        self.statement(root, ())

    def statement(self, node: Node, redirects: tuple[Redirect, ...]) -> None:
        kind = node.type
        if kind in _CONTAINERS:
            for child in node.named_children:
                self.statement(child, redirects)
        elif kind == "command":
            self.command(node, redirects)
        elif kind == "redirected_statement":
            self.redirected(node, redirects)
        elif kind in ("for_statement", "case_statement"):
            self.loop_or_case(node, redirects)
        elif kind in ("variable_assignment", "variable_assignments", "declaration_command"):
            self.assignment(node, redirects)
        elif kind in ("test_command", "unset_command"):
            self.builtin(node, redirects)
        elif kind == "comment":
            return
        else:
            raise CannotDecide(_UNDECIDABLE.get(kind, f"a {kind.replace('_', ' ')}"), text(node))

    def redirected(self, node: Node, inherited: tuple[Redirect, ...]) -> None:
        body = node.child_by_field_name("body")
        own: list[Redirect] = []
        later: list[Node] = []
        for child in node.named_children:
            if child == body:
                continue
            if child.type in ("file_redirect", "herestring_redirect", "heredoc_redirect"):
                own.append(self.redirect(child, later))
            else:
                later.append(child)
        if body is not None:
            self.redirected_body(body, inherited, (*inherited, *own))
        for child in later:  # what follows a here-document's start: `cat <<E | sh`
            self.statement(child, inherited)

    def redirected_body(
        self, body: Node, inherited: tuple[Redirect, ...], redirects: tuple[Redirect, ...]
    ) -> None:
        """The grammar hangs ``a && b > f`` on the list; the shell gives ``> f`` to ``b``."""
        if body.type not in ("list", "pipeline"):
            self.statement(body, redirects)
            return
        *first, last = body.named_children
        for child in first:
            self.statement(child, inherited)
        self.redirected_body(last, inherited, redirects)

    def redirect(self, node: Node, later: list[Node]) -> Redirect:
        if node.type == "heredoc_redirect":
            return self.heredoc(node, later)
        if node.type == "herestring_redirect":
            value = node.named_children[-1] if node.named_children else node
            return Redirect("<<<", self.reader.value(value))
        operator = next((text(c) for c in node.children if not c.is_named), "")
        destination = node.child_by_field_name("destination")
        if destination is None:
            raise CannotDecide("a redirection without a target", text(node))
        return Redirect(operator, self.reader.value(destination))

    def heredoc(self, node: Node, later: list[Node]) -> Redirect:
        start = next((c for c in node.named_children if c.type == "heredoc_start"), None)
        delimiter = text(start) if start is not None else ""
        literal = any(quote in delimiter for quote in "'\\\"")
        for child in node.named_children:
            if child.type == "heredoc_body":
                if not literal:
                    self.heredoc_body(child)
            elif child.type not in ("heredoc_start", "heredoc_end"):
                later.append(child)
        return Redirect("<<", delimiter)

    def heredoc_body(self, body: Node) -> None:
        """An unquoted here-document expands: only plain ``$NAME`` may appear in it."""
        for part in body.named_children:
            if part.type in ("simple_expansion", "expansion"):
                self.reader.variable(part)
            elif part.type != "heredoc_content":
                what = _UNDECIDABLE.get(part.type, "an expansion in a here-document")
                raise CannotDecide(what, text(part))

    def loop_or_case(self, node: Node, redirects: tuple[Redirect, ...]) -> None:
        for child in node.named_children:
            if child.type in ("do_group", "case_item"):
                body = child.named_children if child.type == "case_item" else [child]
                for part in body:
                    if part.type not in ("word", "raw_string", "string", "concatenation"):
                        self.statement(part, redirects)
            elif child.type != "variable_name":
                self.reader.value(child)  # the words looped over, or the word cased on

    def assignment(self, node: Node, redirects: tuple[Redirect, ...]) -> None:
        pairs: list[tuple[str, str]] = []
        program = "export" if node.type == "declaration_command" else ""
        if program:
            program = text(node.children[0])
        children = [node] if node.type == "variable_assignment" else node.named_children
        for child in children:
            if child.type == "variable_assignment":
                pairs.append(self.pair(child))
            elif child.type != "comment":
                raise CannotDecide("an option of a declaration", text(child))
        self.commands.append(SimpleCommand(program, (), tuple(pairs), redirects, text(node)))

    def pair(self, node: Node) -> tuple[str, str]:
        name = node.child_by_field_name("name")
        value = node.child_by_field_name("value")
        return (text(name) if name else "", self.reader.value(value) if value else "")

    def builtin(self, node: Node, redirects: tuple[Redirect, ...]) -> None:
        words: list[str] = []
        stack = list(reversed(node.named_children))
        while stack:
            child = stack.pop()
            if child.type in _UNDECIDABLE or child.type in ("simple_expansion", "expansion"):
                words.append(self.reader.value(child))
            elif child.named_children and child.type not in ("string", "concatenation"):
                stack.extend(reversed(child.named_children))
            else:
                words.append(self.reader.value(child))
        program = text(node.children[0])
        self.commands.append(SimpleCommand(program, tuple(words), (), redirects, text(node)))

    @staticmethod
    def check_blanks(node: Node) -> None:
        r"""Words of one command are separated by blanks only, never by a newline.

        tree-sitter-bash sometimes reads ``a|b\nc`` as ``b`` with the argument ``c``;
        the shell runs ``c``. Where the two disagree the command cannot be decided.
        """
        source = node.text or b""
        children = node.children
        for left, right in itertools.pairwise(children):
            gap = source[left.end_byte - node.start_byte : right.start_byte - node.start_byte]
            if gap.replace(b"\\\n", b"").strip(b" \t"):
                raise CannotDecide(
                    "the parse and the shell disagree on where a command ends", text(node)
                )

    def command(self, node: Node, redirects: tuple[Redirect, ...]) -> None:
        self.check_blanks(node)
        assignments: list[tuple[str, str]] = []
        own: list[Redirect] = []
        words: list[str] = []
        for child in node.named_children:
            if child.type == "variable_assignment":
                assignments.append(self.pair(child))
            elif child.type in ("file_redirect", "herestring_redirect"):
                own.append(self.redirect(child, []))
            elif child.type == "command_name":
                words.append(self.reader.value(child.named_children[0]))
            elif child.type != "comment":
                words.append(self.reader.value(child))
        name = node.child_by_field_name("name")
        start = name.start_byte if name is not None else node.start_byte
        own_text = (node.text or b"")[start - node.start_byte :].decode("utf-8", "replace")
        found = SimpleCommand(
            words[0] if words else "",
            tuple(words[1:]),
            tuple(assignments),
            (*redirects, *own),
            own_text,
        )
        self.commands.extend(Unwrapper(self.depth, parse_into).unwrap(found))


def parse_into(source: str, depth: int) -> list[SimpleCommand]:
    """The simple commands of ``source`` (a script nested ``depth`` levels deep)."""
    if depth > MAX_DEPTH:
        raise CannotDecide(f"shells nested more than {MAX_DEPTH} deep", source)
    walker = _Walker(source, depth)
    walker.walk_root(_PARSER.parse(source.encode("utf-8", "surrogateescape")).root_node)
    return walker.commands


@lru_cache(maxsize=_CACHE)
def parse_command(source: str) -> ParsedCommand:
    """The simple commands of a ``run:`` command, or why it cannot be decided (cached)."""
    control = _CONTROL.search(source)
    if control is not None:  # the grammar and the shell disagree on these: \r is no blank
        what = f"a control character {control.group()!r} in the command"
        return ParsedCommand(source, (), what, repr(source))
    try:
        commands = parse_into(source, 0)
    except CannotDecide as exc:
        return ParsedCommand(source, (), exc.what, exc.part)
    if not commands:
        return ParsedCommand(source, (), "an empty command", source)
    return ParsedCommand(source, tuple(commands))

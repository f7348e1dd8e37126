"""Parsing a ``run:`` command with tree-sitter-bash into the simple commands it runs.

Compound commands (newline, ``;``, ``&&``, ``||``, ``|``, ``&``, subshells, brace groups,
``if``/``for``/``while``/``case``) are flattened into their simple commands; redirections
of a compound apply to every command inside it. Wrappers (``env``, ``timeout``, ``nice``,
``nohup``, ``command``, ``time``, ``stdbuf``) are unwrapped and ``sh -c``/``bash -c``
scripts parsed in turn (see ``unwrap``). Whatever cannot be reduced to plain words makes
the whole command undecidable. Unknown syntax is undecidable too: deny by default.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

from luminaguard.shell.command import ParsedCommand, Redirect, SimpleCommand
from luminaguard.shell.unwrap import MAX_DEPTH, Unwrapper
from luminaguard.shell.words import CannotDecide, WordReader, text

_LANGUAGE = Language(tree_sitter_bash.language())
_PARSER = Parser(_LANGUAGE)

#: Nodes whose named children are statements, walked in order.
_OPENERS = frozenset({"negated_command", "compound_statement", "test_command"})
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
_CACHE = 8192
_UNUSUAL_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs"})
_MAX_LENGTH = 4096
_DISAGREE = "the parse and the shell could disagree on the words of this command"
_REDIRECTS = frozenset({"file_redirect", "herestring_redirect", "heredoc_redirect"})
#: Operators dash reads otherwise than bash (``&>`` is ``&`` then ``>`` for dash).
_BASH_ONLY = frozenset({"&>", "&>>", ">&", "<&"})
_SINGLE_DIGIT = re.compile(r"[0-9]\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: ksh's extended globs: dash has none, and the grammar takes quadratic time on them.
_EXTGLOB = re.compile(r"[?@*+!]\(")
#: Text only the run could tell, refused before parsing: it could never be Green, and
#: the grammar's error recovery is quadratic on some of it (``a`>`` repeated).
_BEFORE_PARSING = {
    "`": "command substitution",
    "$(": "command substitution",
    "$[": "arithmetic expansion",
    "<(": "process substitution",
    ">(": "process substitution",
    "=(": "an array assignment",
    "\ufeff": "a byte-order mark",
}
#: Tokens that end a command for dash, even inside `[ ... ]`.
_SEPARATORS = frozenset({"|", "||", "&", "&&", ";", ";;", "(", ")", "|&", ";&", ";;&"})
_SUBSTITUTING = frozenset(
    {
        "command_substitution",
        "process_substitution",
        "arithmetic_expansion",
        "expansion",
        "simple_expansion",
    }
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class _Walker:
    """Collects the simple commands of one parsed script."""

    def __init__(self, source: str, depth: int) -> None:
        self.source = source
        self.encoded = (source + "\n").encode("utf-8", "surrogateescape")
        self.depth = depth
        self.commands: list[SimpleCommand] = []
        self.reader = WordReader()

    def walk_root(self, root: Node) -> None:
        if root.has_error:
            raise CannotDecide("the command does not parse as a shell command", self.source)
        _every_byte_read(root, self.encoded)
        self.statement(root, ())

    def statement(self, node: Node, redirects: tuple[Redirect, ...]) -> None:
        kind = node.type
        if kind in _OPENERS:
            _blank_after_opener(node)
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
            before = len(self.commands)
            self.redirected_body(body, inherited, (*inherited, *own))
            if len(self.commands) == before and own:  # `case a in esac >f` opens f too
                self.commands.append(SimpleCommand("", (), (), (*inherited, *own), text(node)))
        else:  # `>f` alone truncates f: a command with no program
            self.commands.append(SimpleCommand("", (), (), (*inherited, *own), text(node)))
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
            raise CannotDecide(
                "a here-document (where it ends, dash and the parse may disagree)", text(node)
            )
        if node.type == "herestring_redirect":
            raise CannotDecide("a here-string, which dash does not have", text(node))
        operator = next((text(c) for c in node.children if not c.is_named), "")
        for child in node.named_children:
            if child.type == "file_descriptor" and not _SINGLE_DIGIT.match(text(child)):
                raise CannotDecide("a file descriptor dash would take for a word", text(node))
        targets = [c for c in node.named_children if c.type != "file_descriptor"]
        if operator in (">&-", "<&-"):  # closes a descriptor: takes no target
            if targets:
                raise CannotDecide("a word after a closed descriptor", text(node))
            return Redirect(operator[:2], "-")
        if len(targets) != 1:
            raise CannotDecide("words after a redirection's target", text(node))
        target = self.reader.value(targets[0])
        if operator in _BASH_ONLY and not (operator in (">&", "<&") and _fd(target)):
            raise CannotDecide(f"{operator} means something else to dash", text(node))
        return Redirect(operator, target)

    def loop_or_case(self, node: Node, redirects: tuple[Redirect, ...]) -> None:
        for child in node.named_children:
            if child.type in ("do_group", "case_item"):
                body = child.named_children if child.type == "case_item" else [child]
                for part in body:
                    if part.type in ("word", "raw_string", "string", "concatenation"):
                        _no_substitution(part)  # a pattern: expanded when it is tried
                    else:
                        self.statement(part, redirects)
            elif child.type == "variable_name":  # `for PATH in ...` sets PATH; and since
                # no variable may be read, a loop variable is of no use to a decided command
                raise CannotDecide(f"a loop that sets {text(child)}", text(node))
            else:
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
        operator = next((text(c) for c in node.children if not c.is_named), "")
        if name is None or name.type != "variable_name" or not _NAME.match(text(name)):
            raise CannotDecide("a word dash would run, not assign", text(node))
        if operator != "=":
            raise CannotDecide(f"{operator} is not an assignment for dash", text(node))
        return (text(name), self.reader.value(value) if value else "")

    def builtin(self, node: Node, redirects: tuple[Redirect, ...]) -> None:
        _no_redirection_inside(node)
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
    def check_blanks(node: Node, children: list[Node], source: bytes) -> None:
        r"""Every byte of a command is in a word the walker reads, words apart by blanks.

        tree-sitter-bash sometimes reads ``a|b\nc`` as ``b`` with the argument ``c``, or
        ``'-'\x`` as two words, or drops a word glued to ``<<``; dash does otherwise.
        Where the two could disagree the command cannot be decided.
        """
        base = node.start_byte
        for index, child in enumerate(children):
            if not child.is_named or child.type == "comment":
                raise CannotDecide(_DISAGREE, text(node))
            if index:
                gap = source[children[index - 1].end_byte - base : child.start_byte - base]
                glued = child.type in _REDIRECTS  # `cat<f`; never `>f'x'y`: dash reads on
                if gap.strip(b" \t") or not (gap or glued):
                    raise CannotDecide(_DISAGREE, text(node))

    def command(self, node: Node, redirects: tuple[Redirect, ...]) -> None:
        children = node.children
        source = node.text or b""
        self.check_blanks(node, children, source)
        assignments: list[tuple[str, str]] = []
        own: list[Redirect] = []
        words: list[str] = []
        start = None
        for child in children:
            kind = child.type
            if kind == "variable_assignment":
                assignments.append(self.pair(child))
            elif kind in ("file_redirect", "herestring_redirect"):
                own.append(self.redirect(child, []))
            elif kind == "command_name":
                start = child.start_byte
                words.append(self.reader.value(child.named_children[0]))
            else:
                words.append(self.reader.value(child))
        offset = (start if start is not None else node.start_byte) - node.start_byte
        own_text = source[offset:].decode("utf-8", "replace")
        found = SimpleCommand(
            words[0] if words else "",
            tuple(words[1:]),
            tuple(assignments),
            (*redirects, *own),
            own_text,
        )
        self.commands.extend(Unwrapper(self.depth, parse_into).unwrap(found))


def _every_byte_read(root: Node, whole: bytes) -> None:
    r"""Between the grammar's tokens there is only white space; nothing was dropped.

    ``find . \<tab>#x -delete`` loses its backslash between tokens (the grammar then
    takes ``#x -delete`` for a comment, dash for words): such a command is refused.
    """
    source = whole
    base = 0
    position = 0
    cursor = root.walk()
    while True:
        if cursor.goto_first_child():
            continue
        node = cursor.node
        assert node is not None
        start, end = node.start_byte - base, node.end_byte - base
        if start > position and source[position:start].strip(b" \t\n"):
            raise CannotDecide(_DISAGREE, source[position:end].decode("utf-8", "replace"))
        if end > position:
            position = end
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                if source[position:].strip(b" \t\n"):
                    raise CannotDecide(_DISAGREE, source[position:].decode("utf-8", "replace"))
                return


def _blank_after_opener(node: Node) -> None:
    """``!x``, ``{x`` and ``[x`` are one word for dash: the opener needs a blank after it."""
    opener = node.children[0] if node.children else None
    if opener is None or opener.is_named:
        return
    source = node.text or b""
    after = source[opener.end_byte - node.start_byte : opener.end_byte - node.start_byte + 1]
    if after not in (b" ", b"\t", b"\n"):
        raise CannotDecide(f"{text(opener)} glued to a word is a word for dash", text(node))


def _unusual(source: str) -> re.Match[str] | None:
    """The first character no command needs and the grammar's scanner mishandles.

    tree-sitter-bash 0.25 crashes the process (a segmentation fault, repeatably after some
    parses) on some code points past U+FFFF, such as ``a{`` followed by U+E0001: so
    anything beyond the Basic Multilingual Plane is refused, with C1 controls, format
    characters (bidi, zero-width), private-use and unassigned code points, before parsing.
    """
    if source.isascii():
        return None
    for char in source:
        if ord(char) > 0xFFFF or (
            not char.isascii() and unicodedata.category(char) in _UNUSUAL_CATEGORIES
        ):
            return re.match(re.escape(char), char)
    return None


def _fd(target: str) -> bool:
    return target.isdigit() or target == "-"


def _descendants(node: Node) -> list[Node]:
    found, stack = [], list(node.children)
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(child.children)
    return found


def _no_substitution(node: Node) -> None:
    """Refuse any expansion in ``node`` (a ``case`` pattern is expanded when tried)."""
    for child in (node, *_descendants(node)):
        if child.type in _SUBSTITUTING:
            raise CannotDecide("an expansion in a case pattern", text(child))


def _no_redirection_inside(node: Node) -> None:
    """``[ a > f ]`` redirects for dash, ``[ x || rm y ]`` runs ``rm``: both are refused."""
    if "\n" in text(node):
        raise CannotDecide("a newline inside a test", text(node))
    for child in _descendants(node):
        token = text(child)
        if not child.is_named and any(c in token for c in "<>&"):
            raise CannotDecide("a redirection or & inside a test", text(node))
        if not child.is_named and token in _SEPARATORS:
            raise CannotDecide(f"{token} inside a test ends the test for dash", text(node))


def parse_into(source: str, depth: int) -> list[SimpleCommand]:
    """The simple commands of ``source`` (a script nested ``depth`` levels deep)."""
    if depth > MAX_DEPTH:
        raise CannotDecide(f"shells nested more than {MAX_DEPTH} deep", source)
    if "\\\n" in source:  # dash joins the lines before it reads words; the grammar does not
        raise CannotDecide("a line continuation (a backslash ending a line)", source)
    for text_, what in _BEFORE_PARSING.items():
        if text_ in source:
            raise CannotDecide(what, source[:80])
    if _EXTGLOB.search(source):
        raise CannotDecide("an extended glob such as ?( or @(", source[:80])
    if len(source) > _MAX_LENGTH:
        raise CannotDecide(f"a command longer than {_MAX_LENGTH} characters", source[:80])
    walker = _Walker(source, depth)
    if source.endswith("\\"):
        raise CannotDecide("a backslash at the end of the command", source[-80:])
    # a final newline changes nothing for dash, and spares the grammar a costly ambiguity
    # at the end of input (a pipeline of three parses in 8 us instead of 90 us)
    walker.walk_root(_PARSER.parse(walker.encoded).root_node)
    return walker.commands


@lru_cache(maxsize=_CACHE)
def parse_command(source: str) -> ParsedCommand:
    """The simple commands of a ``run:`` command, or why it cannot be decided (cached)."""
    control = _CONTROL.search(source) or _unusual(source)
    if control is not None:  # the grammar and the shell disagree on these: \r is no blank
        what = f"a control character {control.group()!r} in the command"
        return ParsedCommand(source, (), what, repr(source))
    try:
        commands = parse_into(source, 0)
    except CannotDecide as exc:
        return ParsedCommand(source, (), exc.what, exc.part)
    except RecursionError:
        return ParsedCommand(source, (), "a command nested too deeply", source[:80])
    except UnicodeError:
        return ParsedCommand(source, (), "text that is not valid Unicode", repr(source[:80]))
    if not commands:
        return ParsedCommand(source, (), "an empty command", source)
    return ParsedCommand(source, tuple(commands))

"""Wrappers are unwrapped and shells' ``-c`` scripts parsed: the wrapped program decides.

``env A=1 timeout 5 nice -n 5 git log`` is ``git log`` with ``A=1`` assigned; ``sh -c
'ls; id'`` is ``ls`` and ``id``. A wrapper option this module does not know makes the
command undecidable rather than guessed at. Programs that run text as code (``eval``,
``source``, ``exec``, ``trap``, ``alias``...) are undecidable, as is a shell reading
its script from a here-document.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Iterator

from luminaguard.shell.command import SimpleCommand, program_name
from luminaguard.shell.words import CannotDecide

MAX_DEPTH = 4

#: Shells whose ``-c`` script is parsed in turn: the ones that read it as dash does.
SHELLS = frozenset({"sh", "dash"})
_CODE_RUNNERS = frozenset(
    {"eval", "source", ".", "exec", "trap", "alias", "enable", "fc", "coproc", "builtin"}
)
#: Options of sh that change nothing but error handling and tracing (``-i`` and ``-l``
#: would read profile files first, ``-s`` stdin: those are refused).
_SHELL_FLAGS = frozenset("eufnvxc")


def _env(args: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    assignments: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-i", "--ignore-environment", "-", "-u", "--unset") or arg.startswith(
            ("--unset=", "-u")
        ):  # the sandbox's own settings (git's, PATH) would be gone
            raise CannotDecide("env clearing or removing variables", arg)
        if arg in ("-0", "--null"):
            i += 1
        elif arg == "--":
            i += 1
            break
        elif arg.startswith("-"):
            raise CannotDecide("an option of env this policy cannot follow", arg)
        else:
            break  # GNU env reads no option after its first NAME=VALUE
    while i < len(args) and "=" in args[i]:
        name, value = args[i].split("=", 1)
        assignments.append((name, value))
        i += 1
    return assignments, args[i:]


def _options(args: list[str], flags: frozenset[str], valued: frozenset[str], what: str) -> int:
    """Index of the first argument after the options of a wrapper."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        arg = args[i]
        if arg == "--":
            return i + 1
        if arg in flags or any(arg.startswith(v + "=") for v in valued if v.startswith("--")):
            i += 1
        elif arg in valued:
            i += 2
        elif arg[:2] in valued and not arg.startswith("--"):
            i += 1  # -n5, -oL: the value attached
        elif what == "nice" and arg[1:].lstrip("-").isdigit():
            i += 1  # nice -10
        else:
            raise CannotDecide(f"an option of {what} this policy cannot follow", arg)
    return i


_WRAPPERS: dict[str, tuple[frozenset[str], frozenset[str], int]] = {
    # name: (flags, options with a value, words after the options before the program)
    "timeout": (
        frozenset({"--preserve-status", "--foreground", "-v", "--verbose"}),
        frozenset({"-s", "--signal", "-k", "--kill-after"}),
        1,
    ),
    "nice": (frozenset(), frozenset({"-n", "--adjustment"}), 0),
    "nohup": (frozenset(), frozenset(), 0),
    "command": (frozenset({"-p"}), frozenset(), 0),
    "time": (frozenset({"-p"}), frozenset(), 0),
    "stdbuf": (frozenset(), frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}), 0),
}


class Unwrapper:
    """Turns one simple command into what actually runs (recursing into ``sh -c``)."""

    def __init__(self, depth: int, parse: Callable[[str, int], list[SimpleCommand]]) -> None:
        self.depth = depth
        self.parse = parse

    def unwrap(self, command: SimpleCommand) -> Iterator[SimpleCommand]:
        """The simple commands that ``command`` runs."""
        if _last(command.program) in _CODE_RUNNERS:
            raise CannotDecide(f"{command.program} runs text as code", command.text)
        name = program_name(command.program)  # ./env or /work/sh are not env or sh
        if name == "env" and command.args:
            assignments, rest = _env(list(command.args))
            yield from self._inner(command, rest, "env", assignments)
        elif name in _WRAPPERS and command.args and not self._lookup_only(name, command):
            flags, valued, skip = _WRAPPERS[name]
            start = _options(list(command.args), flags, valued, name) + skip
            yield from self._inner(command, list(command.args[start:]), name, [])
        elif name in SHELLS:
            yield from self._shell(command)
        else:
            yield command

    @staticmethod
    def _lookup_only(name: str, command: SimpleCommand) -> bool:
        return name == "command" and any(arg in ("-v", "-V") for arg in command.args[:2])

    def _inner(
        self, outer: SimpleCommand, rest: list[str], wrapper: str, assigned: list[tuple[str, str]]
    ) -> Iterator[SimpleCommand]:
        if not rest:
            yield outer
            return
        inner = dataclasses.replace(
            outer,
            program=rest[0],
            args=tuple(rest[1:]),
            assignments=(*outer.assignments, *assigned),
            text=_own_text(outer.text, rest),
            wrappers=(*outer.wrappers, wrapper),
        )
        yield from self.unwrap(inner)

    def _shell(self, command: SimpleCommand) -> Iterator[SimpleCommand]:
        if any(r.operator in ("<<", "<<<") for r in command.redirects):
            raise CannotDecide("a here-document feeds a shell", command.text)
        script = _script(list(command.args))
        if script is None:
            yield command  # a shell running a file or stdin: the program decides
            return
        if self.depth + 1 > MAX_DEPTH:
            raise CannotDecide(f"shells nested more than {MAX_DEPTH} deep", command.text)
        inners = self.parse(script, self.depth + 1)
        if not inners:  # `sh -c '' >f` still opens f: the shell itself is what runs
            yield command
            return
        for inner in inners:
            yield dataclasses.replace(
                inner,
                assignments=(*command.assignments, *inner.assignments),
                redirects=(*command.redirects, *inner.redirects),
                wrappers=(*command.wrappers, posixpath.basename(command.program), *inner.wrappers),
            )


def _script(args: list[str]) -> str | None:
    """The ``-c`` script of a shell's arguments, or None when it runs a file or stdin."""
    found_c = False
    i = 0
    while i < len(args) and args[i][:1] in ("-", "+") and args[i] not in ("-", "+"):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg.startswith("--") or not set(arg[1:]) <= _SHELL_FLAGS:
            raise CannotDecide("an option of the shell this policy cannot follow", arg)
        found_c = found_c or "c" in arg[1:]
        i += 1
    if not found_c:
        return None
    if i >= len(args):
        raise CannotDecide("sh -c without a script", " ".join(args))
    return args[i]


def _own_text(outer: str, rest: list[str]) -> str:
    """The wrapped program's part of the wrapper's text (from its name on), else its words."""
    position = outer.find(rest[0])
    return outer[position:] if position >= 0 else " ".join(rest)


def _last(path: str) -> str:
    """The last component of ``path`` (``posixpath.basename``, in one call of work)."""
    return path[path.rfind("/") + 1 :]

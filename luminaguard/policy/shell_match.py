"""Rule conditions on one simple command of a parsed ``run:`` command.

``program`` globs without a ``/`` match a program run by its name, or from a system
folder (``/usr/bin/git`` is ``git``; ``/work/git`` is not); globs with a ``/`` match the
normalised path. ``args`` tests ``any``/``all``/``none`` of the arguments, or one by
position. ``redirects`` is a test every writing redirection's target must pass; a Green
rule that does not say admits none but ``/dev/null`` (a Red rule ignores them).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from luminaguard.policy.action import ANNOTATION_DEFAULTS
from luminaguard.shell.command import SimpleCommand, program_name

#: Variables a command may set without changing which code runs.
SAFE_VARIABLES = frozenset({"LANG", "LANGUAGE", "TZ", "COLUMNS", "LINES", "NO_COLOR", "TERM"})


@dataclass(frozen=True)
class CommandPart:
    """One simple command as the rules see it (an Action of kind ``run``)."""

    simple: SimpleCommand
    kind: str = "run"
    server: None = None
    tool: None = None
    args: dict[str, object] = field(default_factory=dict)
    annotations: None = None

    @property
    def command(self) -> str:
        """The simple command's own text."""
        return self.simple.text

    @cached_property
    def name(self) -> str | None:
        """The program's name when it is bare or in a system folder (see ``program_name``)."""
        return program_name(self.simple.program)

    def effective_annotations(self) -> dict[str, bool]:
        """Shell commands have no annotations: MCP's pessimistic defaults."""
        return dict(ANNOTATION_DEFAULTS)


PartTest = Callable[[CommandPart], bool]


def unsafe_assignment(simple: SimpleCommand) -> str | None:
    """The first variable the command sets that could change what runs, if any."""
    for name, _ in simple.assignments:
        if name not in SAFE_VARIABLES and not name.startswith("LC_"):
            return name
    return None


def program_matches(
    program: str, regex: Callable[[str], object], name: str | bool | None = False
) -> bool:
    """Whether a program as written matches a compiled program glob (see module doc).

    A path with ``.`` or ``..`` in it matches nothing: ``x/../cat`` may be a symlink away
    from what its text says. ``name`` is ``program_name(program)`` if already known.
    """
    if name is False:
        name = program_name(program)
    if isinstance(name, str) and regex(name) is not None:
        return True
    clean = program.startswith("/") and posixpath.normpath(program) == program
    return "/" in program and clean and regex(program) is not None


def argv_test(key: str, test: Callable[[object], bool]) -> PartTest:
    """A test on the arguments: ``any``, ``all``, ``none`` of them, or one by position."""
    if key == "any":
        return lambda part: any(test(arg) for arg in part.simple.args)
    if key == "all":
        return lambda part: all(test(arg) for arg in part.simple.args)
    if key == "none":
        return lambda part: not any(test(arg) for arg in part.simple.args)
    position = int(key)
    return lambda part: position < len(part.simple.args) and test(part.simple.args[position])


def redirects_test(test: Callable[[object], bool] | None) -> PartTest:
    """Every writing redirection's target passes ``test`` (None: only ``/dev/null``)."""
    check = test or (lambda target: target == "/dev/null")

    def holds(part: CommandPart) -> bool:
        return all(
            clean_target(r.target) and check(r.target)
            for r in part.simple.redirects
            if r.writes and not r.duplicates
        )

    return holds


def clean_target(target: str) -> bool:
    """A target with ``.``/``..`` or doubled slashes is not judged by its text (symlinks)."""
    return bool(target) and posixpath.normpath(target) == target

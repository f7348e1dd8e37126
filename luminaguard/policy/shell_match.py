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

from luminaguard.config.models.policy import Match, ValueMatch
from luminaguard.policy.action import ANNOTATION_DEFAULTS
from luminaguard.shell.command import SimpleCommand

#: Folders whose programs a bare program name in a rule also stands for.
SYSTEM_BIN = frozenset({"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin"})
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


def program_matches(program: str, regex: Callable[[str], object]) -> bool:
    """Whether a program as written matches a compiled program glob (see module doc)."""
    if "/" not in program:
        return regex(program) is not None
    path = posixpath.normpath(program)
    if regex(path) is not None:
        return True
    folder, name = posixpath.split(path)
    return folder in SYSTEM_BIN and regex(name) is not None


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
            check(posixpath.normpath(r.target) if r.target else r.target)
            for r in part.simple.redirects
            if r.writes and not r.duplicates
        )

    return holds


def needs_redirects_test(match: Match, risk: str) -> ValueMatch | bool | None:
    """The redirects test of a rule: its own, the Green default (None), or none (False)."""
    if match.redirects is not None:
        return match.redirects
    return None if risk == "green" else False

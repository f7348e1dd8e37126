"""What a ``run:`` command is made of: simple commands, or the reason it cannot be decided."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

#: Folders whose programs a bare program name also stands for (``/usr/bin/git`` is git).
SYSTEM_BIN = frozenset({"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin"})


def program_name(program: str) -> str | None:
    """The name a program is known by: itself when bare, else only from a system folder.

    ``./ls``, ``x/../cat`` and ``/work/env`` have no name: they are files the agent may
    have planted, whatever their last component says.
    """
    if "/" not in program:
        return program
    folder, name = posixpath.split(program)
    return name if folder in SYSTEM_BIN and posixpath.normpath(program) == program else None


#: Redirection operators that write (or may create) their target.
WRITING = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})


@dataclass(frozen=True)
class Redirect:
    """One redirection of a simple command: operator and target (a plain word)."""

    operator: str
    target: str

    @property
    def writes(self) -> bool:
        """Whether the target is opened for writing (and may be created)."""
        return self.operator in WRITING or (self.operator == ">&" and not self.duplicates)

    @property
    def duplicates(self) -> bool:
        """Whether this only duplicates or closes a file descriptor (``2>&1``, ``<&-``)."""
        return self.operator in (">&", "<&") and (self.target.isdigit() or self.target == "-")


@dataclass(frozen=True)
class SimpleCommand:
    """One program run: its name as written, arguments, assignments and redirections.

    ``text`` is the command's own source (program and arguments, wrappers removed); rules
    with a ``command`` test see only this, never its neighbours.
    """

    program: str
    args: tuple[str, ...] = ()
    assignments: tuple[tuple[str, str], ...] = ()
    redirects: tuple[Redirect, ...] = ()
    text: str = ""
    wrappers: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class ParsedCommand:
    """A whole ``run:`` command: its simple commands, or why it cannot be decided."""

    source: str
    commands: tuple[SimpleCommand, ...] = ()
    undecidable: str | None = None
    part: str | None = None

    @property
    def decidable(self) -> bool:
        """Whether every part reduced to plain words."""
        return self.undecidable is None

"""What a source gives: a ``Snapshot``; how it fails: ``SourceError``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from luminaguard.errors import LuminaGuardError


class SourceError(LuminaGuardError):
    """A source that cannot be fetched: the message says why, credentials redacted."""


@dataclass(frozen=True)
class Snapshot:
    """The documents of a source at one revision.

    ``root`` is a folder holding the files at this revision (callers only read it);
    ``revision`` is, for git, the full commit SHA and, for a folder, ``sha256:`` and a
    hash over every file's relative path and content; ``url`` is the source as given,
    credentials redacted.
    """

    root: Path
    revision: str
    url: str

    def revision_of(self, path: Path) -> str:
        """The revision of a document file of this snapshot.

        Every file of a snapshot comes from the one revision: for git the commit the
        tree was exported from, for a folder the hash of the whole folder (a change to
        any file changes the revision of all of them). ``path`` is not consulted.
        """
        del path
        return self.revision


class Source(Protocol):
    """Somewhere documents come from: a folder, or a git repository."""

    url: str

    def fetch(self) -> Snapshot:
        """The documents now (blocking); ``SourceError`` on any failure."""
        ...

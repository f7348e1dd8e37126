"""Where a reconciler's documents come from: a *source*, fetched into a *snapshot*.

A source is a local folder (``FolderSource``) or a git repository at a branch or a
pinned revision (``GitSource``). ``Source.fetch()`` blocks, and either returns a
``Snapshot`` — a folder of files at one revision, the revision's name, the source's
URL with credentials redacted — or raises ``SourceError`` with a message fit for
users (no traceback, no secret) and leaves nothing half made behind.

Revisions:

* git: the full SHA of the commit the tree was exported from. A branch (default: the
  remote's HEAD as cloned) follows new commits on each fetch; a pinned revision (a
  SHA, or any name git resolves to a commit) stays put.
* folder: ``sha256:`` and a hash over every file's relative path and content, sorted,
  so it is stable across fetches and changes when a file changes, is added, removed
  or renamed.

``Snapshot.revision_of(path)`` is the revision a document came from; every file of
a snapshot shares the snapshot's revision (for a folder, any change changes all).

A git source keeps a bare mirror and exported trees under its cache folder
(``gitsource``); callers only read ``Snapshot.root``. A folder source's root is the
folder itself, read in place. ``source_for`` picks one from what the user typed.
"""

from __future__ import annotations

from pathlib import Path

from luminaguard.gitops.folder import FolderSource
from luminaguard.gitops.gitsource import GitSource, checked_name
from luminaguard.gitops.snapshot import Snapshot, Source, SourceError
from luminaguard.gitops.urls import is_git_url, redact

__all__ = ["FolderSource", "GitSource", "Snapshot", "Source", "SourceError", "source_for"]


def _is_repository(path: Path) -> bool:
    bare = (path / "HEAD").is_file() and (path / "objects").is_dir()
    return bare or (path / ".git").exists()


def source_for(
    spec: str,
    cache: Path,
    branch: str | None = None,
    revision: str | None = None,
    git: bool = False,
) -> Source:
    """The source ``spec`` names.

    A git URL (``https://``, ``ssh://``, ``file://``, ``user@host:path``) is a
    ``GitSource``; so is a local path to a git repository when a branch or revision is
    given, or ``git`` says it is one (``--git``). Any other existing folder is a
    ``FolderSource``.
    """
    if spec.startswith("-"):
        raise SourceError(f"the source {redact(spec)!r} is refused: it would read as an option")
    branch, revision = checked_name(branch, "branch"), checked_name(revision, "revision")
    if is_git_url(spec):
        return GitSource(spec, cache, branch=branch, revision=revision)
    path = Path(spec)
    pinned = git or branch is not None or revision is not None
    if pinned and path.is_dir() and _is_repository(path):
        return GitSource(str(path.resolve()), cache, branch=branch, revision=revision)
    if pinned:
        raise SourceError(f"{spec} is not a git repository")
    if path.is_dir():
        return FolderSource(path)
    raise SourceError(f"the source {redact(spec)!r} is neither a folder nor a git URL")

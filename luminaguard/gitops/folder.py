"""``FolderSource``: a local folder, read where it is.

Its revision is ``sha256:`` and a hash over every file's path relative to the folder
and its content, in sorted order, so the same files give the same revision wherever
and whenever they are hashed. A symbolic link counts by its target's text (never
followed); a ``.git`` folder is left out (git's own bookkeeping changes without the
documents changing).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from luminaguard.gitops.snapshot import Snapshot, SourceError

SKIPPED = frozenset({".git"})


def _files(root: Path) -> Iterator[Path]:
    for folder, subfolders, files in os.walk(root, onerror=_raise):
        links = [d for d in subfolders if Path(folder, d).is_symlink()]  # not descended
        subfolders[:] = [d for d in subfolders if d not in SKIPPED and d not in links]
        for name in (*files, *links):
            yield Path(folder, name)


def _raise(error: OSError) -> None:
    raise error


def _entry(path: Path) -> bytes:
    """What a file contributes besides its path: its kind and content digest."""
    if path.is_symlink():
        return b"link\0" + os.readlink(path).encode("utf-8", "surrogateescape")
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return b"file\0" + digest.digest()


def folder_revision(root: Path) -> str:
    """``sha256:HEX`` over every file's relative path and content under ``root``."""
    total = hashlib.sha256()
    entries = sorted((p.relative_to(root).as_posix(), p) for p in _files(root))
    for relative, path in entries:
        name = relative.encode("utf-8", "surrogateescape")
        entry = _entry(path)
        for part in (name, entry):
            total.update(len(part).to_bytes(8, "big") + part)
    return "sha256:" + total.hexdigest()


class FolderSource:
    """A local folder: the snapshot's root is the folder itself."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = str(path)

    def fetch(self) -> Snapshot:
        """Hash the folder as it is now."""
        if not self.path.is_dir():
            raise SourceError(f"the source folder {self.url} does not exist or is not a folder")
        try:
            revision = folder_revision(self.path)
        except OSError as exc:
            raise SourceError(f"cannot read the source folder {self.url}: {exc}") from None
        return Snapshot(root=self.path, revision=revision, url=self.url)

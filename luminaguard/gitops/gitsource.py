"""``GitSource``: a git repository at a branch or a pinned revision, through a bare mirror.

Layout under ``cache`` (folders 0700), ``<id>`` being ``sha256(url)[:16]``::

    <id>.git/             bare mirror: cloned on the first fetch, ``fetch --prune`` after
    <id>/trees/<sha>/     the files of commit <sha> (``trees.export``); the newest kept
    <id>/lock             held while fetching, so two processes do not mix their work

The mirror keeps the URL it was cloned from in its config (credentials included: the
folder is the owner's alone); nothing shown to users holds them.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from luminaguard.gitops import trees
from luminaguard.gitops.git import Git
from luminaguard.gitops.snapshot import Snapshot, SourceError
from luminaguard.gitops.urls import parse

HEADS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")


#: What a branch name may not hold (``git check-ref-format``), so it names one branch.
NOT_IN_BRANCH = ("..", "@{", "~", "^", ":", "?", "*", "[", "\\", "//")


def _usable(value: str, what: str) -> bool:
    if not value or value.startswith("-") or any(c in string.whitespace for c in value):
        return False
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return False
    if what != "branch":
        return True
    odd_end = value.endswith((".lock", "/", ".")) or value.startswith("/")
    return not odd_end and not any(part in value for part in NOT_IN_BRANCH)


def checked_name(value: str | None, what: str) -> str | None:
    """A branch or revision as given; refused if git could read it as an option.

    A branch must also be a valid branch name (``git check-ref-format`` rules).
    """
    if value is None:
        return None
    if not _usable(value, what):
        raise SourceError(f"the {what} {value!r} is refused: not a usable {what} name")
    return value


class GitSource:
    """A git repository at a branch (default: the remote's HEAD) or a pinned revision."""

    def __init__(
        self,
        url: str,
        cache: Path,
        branch: str | None = None,
        revision: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        try:
            parsed = parse(url)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        self.git = Git(parsed, timeout)
        self.url = parsed.shown
        self.branch = checked_name(branch, "branch")
        self.revision = checked_name(revision, "revision")
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
        self.cache = cache
        self.mirror = cache / f"{key}.git"
        self.folder = cache / key

    def fetch(self) -> Snapshot:
        """Update the mirror, resolve the branch or revision, export its tree."""
        with self._locked():
            trees.clear_temporaries(self.folder / "trees")
            self._update_mirror()
            sha = self._resolve()
            root = trees.export(self.git, self.mirror, sha, self.folder / "trees")
            trees.prune(self.folder / "trees", keep=root)
        return Snapshot(root=root, revision=sha, url=self.url)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        trees.private_folder(self.folder)
        with (self.folder / "lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _update_mirror(self) -> None:
        if self.mirror.is_dir():
            self.git.run("fetch", "--prune", "--quiet", "origin", cwd=self.mirror)
            return
        temporary = Path(tempfile.mkdtemp(prefix=".clone-", dir=trees.private_folder(self.cache)))
        try:
            clone = temporary / "mirror.git"
            self.git.run("clone", "--bare", "--quiet", "--", self.git.url.raw, str(clone))
            self.git.run("config", "--unset-all", "remote.origin.fetch", cwd=clone, check=False)
            for refspec in HEADS:
                self.git.run("config", "--add", "remote.origin.fetch", refspec, cwd=clone)
            clone.chmod(0o700)
            clone.rename(self.mirror)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    def _resolve(self) -> str:
        if self.revision is not None:
            return self._commit(self.revision, f"revision {self.revision!r}")
        if self.branch is not None:
            return self._commit(f"refs/heads/{self.branch}", f"branch {self.branch!r}")
        return self._commit("HEAD", "the remote's default branch (HEAD)")

    def _commit(self, name: str, what: str) -> str:
        """The full SHA of the commit ``name`` names in the mirror."""
        out = self.git.run(
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{name}^{{commit}}",
            cwd=self.mirror,
            check=False,
        )
        sha = out.strip()
        if not sha:
            raise SourceError(f"{what} not found in {self.url}")
        return sha

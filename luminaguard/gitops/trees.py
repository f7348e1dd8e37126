"""A commit's files as a folder: ``git archive`` extracted safely, then renamed into place.

``trees/<sha>/`` appears whole or not at all: the archive is extracted into a
temporary folder beside it with ``tarfile``'s ``data`` filter (no absolute paths, no
links leading outside, no devices, no setuid bits), and a member the filter refuses
(a symlink to ``/etc/passwd``) is left out, logged. The filter is not trusted alone
(some Pythons' is fooled by paths longer than ``PATH_MAX``): only files, folders and
symbolic links are extracted, never one whose path goes through a link, and once
extracted every link whose target does not resolve (strictly) inside the tree is
removed. Only the newest ``KEEP`` trees are kept; the one just returned is never
removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from luminaguard.gitops.git import Git
from luminaguard.gitops.snapshot import SourceError

log = logging.getLogger("luminaguard.gitops")

KEEP = 5
TEMPORARY = ".tmp-"
#: Makes ``git archive`` write exactly the committed bytes, whatever the tree's
#: ``.gitattributes`` say (``$GIT_DIR/info/attributes`` has the last word).
ATTRIBUTES = "* -export-ignore -export-subst -text -ident -filter -working-tree-encoding\n"


def private_folder(path: Path) -> Path:
    """``path`` made (with its parents) and set to mode 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _through_link(name: str, dest: str) -> bool:
    """Whether a folder on ``name``'s path (under ``dest``) is a symbolic link."""
    parts = PurePosixPath(name).parts[:-1]
    return any(os.path.islink(os.path.join(dest, *parts[:n])) for n in range(1, len(parts) + 1))


def _safe_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    if not (member.isreg() or member.isdir() or member.issym()):
        log.warning("left out of the tree: %s (not a file, folder or link)", member.name)
        return None
    if _through_link(member.name, dest):
        log.warning("left out of the tree: %s (its path goes through a link)", member.name)
        return None
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError as exc:
        log.warning("left out of the tree: %s (%s)", member.name, exc)
        return None


def _inside(link: str, root: str) -> bool:
    try:
        target = os.path.realpath(link, strict=True)
    except (OSError, RuntimeError, ValueError):  # dangling, a loop, too long
        return False
    return os.path.commonpath([root, target]) == root


def _remove_links_out(dest: Path) -> None:
    """Remove every link of ``dest`` that does not lead (strictly resolved) inside it."""
    root = os.path.realpath(dest, strict=True)
    for folder, subfolders, files in os.walk(dest):
        for name in (*subfolders, *files):
            path = os.path.join(folder, name)
            if os.path.islink(path) and not _inside(path, root):
                log.warning("left out of the tree: %s (a link leading out of it)", path)
                os.unlink(path)


def _extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, mode="r:") as tar:
        tar.extractall(dest, filter=_safe_member)
    _remove_links_out(dest)


def export(git: Git, mirror: Path, sha: str, trees: Path) -> Path:
    """``trees/<sha>/``: the files of commit ``sha`` of ``mirror``, made if missing."""
    final = trees / sha
    if final.is_dir():
        os.utime(final)  # used now: the newest, kept by ``prune``
        return final
    private_folder(trees)
    (mirror / "info").mkdir(exist_ok=True)
    (mirror / "info" / "attributes").write_text(ATTRIBUTES, encoding="utf-8")
    temporary = Path(tempfile.mkdtemp(prefix=TEMPORARY, dir=trees))
    try:
        archive = temporary / "archive.tar"
        with archive.open("wb") as out:
            git.run("archive", "--format=tar", sha, cwd=mirror, stdout=out)
        tree = private_folder(temporary / "tree")
        _extract(archive, tree)
        tree.rename(final)
        os.utime(final)
    except (OSError, tarfile.TarError) as exc:
        raise SourceError(f"cannot export commit {sha} of {git.url.shown}: {exc}") from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


def clear_temporaries(trees: Path) -> None:
    """Remove what an interrupted export left (call with the source's lock held)."""
    if trees.is_dir():
        for entry in trees.glob(f"{TEMPORARY}*"):
            shutil.rmtree(entry, ignore_errors=True)


def prune(trees: Path, keep: Path, limit: int = KEEP) -> None:
    """Remove all but the ``limit`` most recently used trees; never ``keep``."""
    found = [p for p in trees.iterdir() if p.is_dir() and not p.name.startswith(TEMPORARY)]
    found.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in found[limit:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)

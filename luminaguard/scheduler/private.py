"""The state folder is private: folders 0700, files 0600, run ids are plain names.

Modes are set when a file or folder is created and corrected whenever an existing one
is opened, so a state folder made by an older version (0755, 0644) becomes private too.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from luminaguard.errors import UsageError

FOLDER_MODE = 0o700
FILE_MODE = 0o600

_RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def check_run_id(run_id: str) -> str:
    """``run_id`` when it is a plain name (letters, digits, ``.``, ``_``, ``-``); else refuse.

    A run id names a folder under the state folder, so it may not be ``.``, ``..``, hold a
    ``/`` or contain ``..`` anywhere.
    """
    if not _RUN_ID.fullmatch(run_id) or ".." in run_id or run_id == ".":
        raise UsageError(
            f"run id {run_id!r} is not a name: use 1-128 letters, digits, '.', '_' or '-',"
            " without '..'"
        )
    return run_id


def _fix_mode(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o7777 != mode:
            os.chmod(path, mode)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"cannot make {path} private (mode {mode:o}): {exc}") from exc


def private_folder(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700, or make an existing one 0700."""
    try:
        path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the state folder {path}: {exc}") from exc
    _fix_mode(path, FOLDER_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty as 0600 unless it exists; make it 0600 either way."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc}") from exc
    _fix_mode(path, FILE_MODE)
    return path


def make_private(*paths: Path) -> None:
    """Make each existing file 0600 (those missing are left missing)."""
    for path in paths:
        _fix_mode(path, FILE_MODE)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` at once (0600): readers see the old or the new content.

    The data is fsynced before the rename, so a power loss leaves the old or the new
    content, never a torn one (the rename itself may be lost: the old content stays).
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:  # a full disk: the old content stays, no partial copy lingers
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (a short write is continued: on a full disk it raises ENOSPC)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

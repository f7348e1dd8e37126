"""A full file system under the state folder is the environment's fault, not a bug.

SQLite says so as ``SQLITE_FULL``, or as an I/O error while growing its ``-shm`` file
(``SQLITE_IOERR_SHMSIZE``); files say ``ENOSPC`` (or ``EDQUOT``). ``reported`` turns
each into ``DiskFull``, naming the folder and its free space (exit 1). The write that
met it was rolled back whole: free some space and run the command again (``resume``
goes on with a run).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from luminaguard.errors import LuminaGuardError

#: an I/O error of SQLite counts as a full disk only with less than this free
LOW_SPACE = 1 << 20
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(LuminaGuardError):
    """The file system of the state folder (or a work disk) has no space left."""


def free_bytes(folder: Path) -> int | None:
    """Bytes an unprivileged writer may still use on ``folder``'s file system (None: unknown)."""
    for candidate in (folder, *folder.parents):
        try:
            stat = os.statvfs(candidate)
        except OSError:
            continue
        return stat.f_bavail * stat.f_frsize
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def is_full(exc: BaseException, folder: Path) -> bool:
    """Whether ``exc`` (or what caused it) is a file system out of space."""
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.errno in _FULL_ERRNOS:
            return True
        if isinstance(cause, sqlite3.Error):
            name = str(getattr(cause, "sqlite_errorname", ""))
            if name == "SQLITE_FULL":
                return True
            if name.startswith("SQLITE_IOERR"):
                free = free_bytes(folder)
                return free is not None and free < LOW_SPACE
    return False


def describe(folder: Path, what: str = "the state folder") -> str:
    """The message of ``DiskFull``: the folder, its free space, what to do."""
    free = free_bytes(folder)
    left = "unknown" if free is None else f"{free // 1024} KiB"
    return (
        f"no space left on the file system of {what} {folder} ({left} free): nothing"
        " half-written was kept; free some space, then run the command again"
        " (`luminaguard resume RUN` goes on with a run)"
    )


@contextlib.contextmanager
def reported(folder: Path, what: str = "the state folder") -> Iterator[None]:
    """Inside the ``with``, an error caused by a full file system becomes ``DiskFull``."""
    try:
        yield
    except DiskFull:
        raise
    except (OSError, sqlite3.Error, LuminaGuardError) as exc:
        if is_full(exc, folder):
            raise DiskFull(describe(folder, what)) from exc
        raise

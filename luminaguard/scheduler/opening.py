"""Opening ``runs.db`` without writing to it, and rolling back what SQLite left open.

A read-only command (status, approvals, audit verify) opens an existing database with
``mode=ro``: no folder, file or table is made. SQLite still needs the ``-shm`` index of
the WAL; on a full disk it cannot grow one (``SQLITE_IOERR_SHMSIZE``). When no WAL holds
frames (the last writer checkpointed it on close) the database file alone is the whole
state, and it is read as ``immutable``; otherwise ``DiskFull`` (``space``) is reported.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from urllib.parse import quote

from luminaguard import space

log = logging.getLogger("luminaguard.store")

#: the tables a read needs: an older database without them is opened to be upgraded
TABLES = ("runs", "steps", "attempts", "approvals", "audit", "leases")


def existing(path: Path) -> sqlite3.Connection | None:
    """``path`` opened read-only, or None when it is missing or lacks tables (not made yet)."""
    if not path.is_file():
        return None
    try:
        db = _connect(path, "mode=ro")
    except sqlite3.Error as exc:
        if not space.is_full(exc, path.parent) or _wal_has_frames(path):
            raise
        db = _connect(path, "immutable=1")  # the file is the whole state: nothing to index
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not names.issuperset(TABLES):
        db.close()
        return None
    return db


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.absolute()))}?{mode}"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens the WAL now
    except BaseException:
        db.close()
        raise
    return db


def _wal_has_frames(path: Path) -> bool:
    try:
        return path.with_name(path.name + "-wal").stat().st_size > 0
    except FileNotFoundError:
        return False


def roll_back(db: sqlite3.Connection) -> None:
    """Roll back the failed transaction, if SQLite has not already (after a full disk).

    A ``COMMIT`` refused with ``SQLITE_FULL`` may have rolled the transaction back
    itself: a second ``ROLLBACK`` would hide the cause behind "no transaction is active".
    """
    if not db.in_transaction:
        return
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error as exc:  # the caller raises the cause; this one is secondary
        log.warning("rollback after a failed write: %s", exc)

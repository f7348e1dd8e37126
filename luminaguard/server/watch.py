"""Notice writes to the state folder's database by other processes (CLI commands).

inotify (through watchfiles) says that ``runs.db`` or its write-ahead log changed; the
database's ``data_version`` then says whether another connection committed (this
process's own commits do not change it). No polling: an idle server sleeps.

A change to the log comes when another process *writes* its transaction there, which is
before its commit can be seen: SQLite then syncs the log (which can take long on a busy
disk) and publishes the commit in the shared-memory index, a change no file event
reports. So after each event the watcher first waits, in a thread, for the write lock
(every write transaction in progress has ended: its commit is visible), and only then
reads ``data_version``; read at once, it could miss the commit it was woken for, and
nothing would wake it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, awatch

from luminaguard.scheduler.store import RunStore

FILES = frozenset({"runs.db", "runs.db-wal"})
#: How long to wait for another process's write transaction to end (as the store does).
WRITER_TIMEOUT = 30.0


def _ours(change: Change, path: str) -> bool:
    return Path(path).name in FILES


def _writers_done(db: sqlite3.Connection) -> None:
    """Return once no write transaction is in progress (at most ``WRITER_TIMEOUT``)."""
    with contextlib.suppress(sqlite3.OperationalError):  # still busy: look anyway
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")


async def watch(store: RunStore, changed: Callable[[], None], stop: asyncio.Event) -> None:
    """Call ``changed`` after each commit another process makes, until ``stop`` is set."""
    store.changed_elsewhere()  # the version as of now
    waiter = sqlite3.connect(
        store.state_dir / "runs.db",
        timeout=WRITER_TIMEOUT,
        isolation_level=None,
        check_same_thread=False,  # used by one thread at a time
    )
    try:
        async for _ in awatch(
            store.state_dir,
            watch_filter=_ours,
            recursive=False,
            debounce=200,
            step=5,
            stop_event=stop,
            rust_timeout=1000,
        ):
            await asyncio.to_thread(_writers_done, waiter)
            if store.changed_elsewhere():
                changed()
    finally:
        waiter.close()

"""Notice writes to the state folder's database by other processes (CLI commands).

inotify (through watchfiles) says that ``runs.db`` or its write-ahead log changed; the
database's ``data_version`` then says whether another connection committed (this
process's own commits do not change it). No polling: an idle server sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, awatch

from luminaguard.scheduler.store import RunStore

FILES = frozenset({"runs.db", "runs.db-wal"})


def _ours(change: Change, path: str) -> bool:
    return Path(path).name in FILES


async def watch(store: RunStore, changed: Callable[[], None], stop: asyncio.Event) -> None:
    """Call ``changed`` after each commit another process makes, until ``stop`` is set."""
    store.changed_elsewhere()  # the version as of now
    async for _ in awatch(
        store.state_dir,
        watch_filter=_ours,
        recursive=False,
        debounce=200,
        step=5,
        stop_event=stop,
        rust_timeout=1000,
    ):
        if store.changed_elsewhere():
            changed()

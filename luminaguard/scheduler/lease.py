"""``RunLease``: the right to drive one run, held by one process at a time.

The lease is an exclusive ``flock`` on ``locks/RUN.lock`` in the state folder, which the
kernel releases when the holding process dies (``kill -9`` included), plus a fencing
token: a number stored in ``runs.db`` that grows with every acquisition. The store
records a step start only for the current token, so a holder that lost its lease (its
lock file replaced, say) cannot start a step.

Taking the lock and recording its holder happen inside one write transaction of the
database, so a process that finds the lock taken reads who holds it, never a previous
holder.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from luminaguard.errors import LuminaGuardError
from luminaguard.scheduler import opening
from luminaguard.scheduler.private import private_file, private_folder

SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY, token INTEGER NOT NULL, pid INTEGER NOT NULL, since REAL NOT NULL
);
"""


class LeaseHeld(LuminaGuardError):
    """Another live process drives the run."""


class LeaseLost(LuminaGuardError):
    """The lease changed hands: this process may not start steps of the run any more."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a run's lease."""

    token: int
    pid: int
    since: float


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(stamp))


class RunLease:
    """An acquired lease on one run; release it by closing (or leaving the ``with``)."""

    def __init__(self, run_id: str, token: int, fd: int) -> None:
        self.run_id = run_id
        self.token = token
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, db: sqlite3.Connection, locks: Path, run_id: str) -> RunLease:
        """Take the lease of ``run_id`` or raise ``LeaseHeld`` naming its holder."""
        private_folder(locks)
        fd = os.open(private_file(locks / f"{run_id}.lock"), os.O_RDWR | os.O_CLOEXEC)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                token = cls._take(db, fd, run_id)
                db.execute("COMMIT")
            except BaseException:
                opening.roll_back(db)
                raise
        except BaseException:
            os.close(fd)
            raise
        return cls(run_id, token, fd)

    @staticmethod
    def _take(db: sqlite3.Connection, fd: int, run_id: str) -> int:
        holder = current_holder(db, run_id)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = f"PID {holder.pid} since {_when(holder.since)}" if holder else "another process"
            raise LeaseHeld(f"run {run_id} is being driven by {who}") from None
        token = (holder.token if holder else 0) + 1
        db.execute(
            "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)",
            (run_id, token, os.getpid(), time.time()),
        )
        return token

    def release(self) -> None:
        """Give the lease up (closing the lock file releases the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLease:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def current_holder(db: sqlite3.Connection, run_id: str) -> Holder | None:
    """The recorded holder of the run's lease (live or not), if it was ever taken."""
    row = db.execute("SELECT token, pid, since FROM leases WHERE run_id = ?", (run_id,)).fetchone()
    return Holder(int(row[0]), int(row[1]), float(row[2])) if row else None


def check_token(db: sqlite3.Connection, run_id: str, token: int) -> None:
    """Raise ``LeaseLost`` unless ``token`` is the run's current one (call inside a write)."""
    holder = current_holder(db, run_id)
    if holder is None or holder.token != token:
        now = f"token {holder.token} of PID {holder.pid}" if holder else "no lease"
        raise LeaseLost(
            f"run {run_id}: lease token {token} is stale ({now}); this process stops driving it"
        )

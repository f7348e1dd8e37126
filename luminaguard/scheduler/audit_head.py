"""The audit log's head (record count and last hash), kept outside the chain.

The chain alone cannot show that records were cut off its end. After every durable
(fsynced) write the store seals the newest record into ``audit.head`` (replaced
atomically, with an HMAC under the audit key), so a log shorter than its head, or whose
record at the head's position has another hash, is detected. A head is never moved onto
a chain that no longer holds the previous head: the evidence of a truncation stays until
a person looks at it.

Records after the head are accepted: a crash may come between a commit and its seal,
and writes that are not fsynced (a step's result) are sealed by the next durable write
(at the latest when the drive ends). Each is authenticated by its own HMAC, which
nobody without the key can produce; only such a not yet sealed tail could be cut off
unseen. Sealing costs about 1 ms per durable write (a rename and an fsync).
"""

from __future__ import annotations

import fcntl
import hmac
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from luminaguard.scheduler.audit_key import GENESIS, AuditKey
from luminaguard.scheduler.private import FILE_MODE, make_private, write_atomically

HEAD_FILE = "audit.head"
LOCK_FILE = "audit.head.lock"


@dataclass(frozen=True)
class AuditHead:
    """The newest record when the head was sealed: its sequence number and hash."""

    count: int
    hash: str

    def mac(self, key: AuditKey) -> str:
        """The head's HMAC."""
        return key.mac(f"luminaguard audit head\0{self.count}\0{self.hash}".encode())

    def __str__(self) -> str:
        return f"{self.count} {self.hash}"


def _tail(db: sqlite3.Connection) -> AuditHead | None:
    row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return AuditHead(int(row[0]), str(row[1])) if row else None


def _holds(db: sqlite3.Connection, head: AuditHead) -> bool:
    if head.count == 0:
        return head.hash == GENESIS
    row = db.execute("SELECT hash FROM audit WHERE seq = ?", (head.count,)).fetchone()
    return row is not None and row[0] == head.hash


class HeadFile:
    """``audit.head`` of one state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / HEAD_FILE
        self.lock = state_dir / LOCK_FILE
        make_private(self.path, self.lock)

    def read(self, key: AuditKey) -> tuple[AuditHead | None, str | None]:
        """The sealed head, or None and why it cannot be trusted (None, None: no head yet)."""
        try:
            data = json.loads(self.path.read_text())
            head = AuditHead(int(data["count"]), str(data["hash"]))
            key_id, mac = str(data["key"]), str(data["mac"])
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"{self.path} is unreadable ({exc})"
        if key_id != key.id:
            return None, (
                f"the audit key {key.source} (id {key.id}) is not the key audit.head was sealed"
                f" with (id {key_id}): a wrong --audit-key FILE, or a forged log"
            )
        if not hmac.compare_digest(mac, head.mac(key)):
            return None, f"{self.path} does not match its HMAC (altered)"
        return head, None

    def key_problem(self, key: AuditKey) -> str | None:
        """Why ``key`` is not the key the head was sealed with (None when it is, or unknown)."""
        _, problem = self.read(key)
        return problem if problem and problem.startswith("the audit key") else None

    def seal(self, db: sqlite3.Connection, key: AuditKey) -> None:
        """Record the log's newest record as the head, unless the old head is not in the log."""
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # heads are written in the order the log grew
            tail = _tail(db)
            old, _ = self.read(key)
            if tail is None or old is None or not _holds(db, old) or old.count >= tail.count:
                return  # nothing new, or evidence a person must see
            self._write(tail, key)
        finally:
            os.close(fd)

    def start(self, db: sqlite3.Connection, key: AuditKey) -> None:
        """Seal the empty head of a new log (a missing head is evidence from then on)."""
        if _tail(db) is None and not self.path.exists():
            self._write(AuditHead(0, GENESIS), key)

    def _write(self, head: AuditHead, key: AuditKey) -> None:
        data = {"count": head.count, "hash": head.hash, "key": key.id, "mac": head.mac(key)}
        write_atomically(self.path, (json.dumps(data) + "\n").encode())

    def problems(self, db: sqlite3.Connection, key: AuditKey) -> list[str]:
        """Why the log does not reach its sealed head (empty when it does)."""
        head, problem = self.read(key)
        if problem is not None:
            return [problem]
        tail = _tail(db)
        if tail is None and (head is None or head.count == 0):
            return []  # an empty log (read-only, not started yet: ``start`` would seal it)
        if head is None:
            return [f"{self.path} is missing: records may have been cut off"]
        if tail is None or tail.count < head.count:
            last = tail.count if tail else 0
            return [
                f"record {last + 1}: missing; the log ends at record {last} but its head is"
                f" record {head.count} (records removed from the end)"
            ]
        if not _holds(db, head):
            return [f"record {head.count}: is not the record sealed as the head (rewritten)"]
        return []

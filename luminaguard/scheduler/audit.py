"""The audit log: append-only, each record chained to the one before it by an HMAC.

A record's hash is HMAC-SHA256, under the state's audit key, over the previous record's
hash and the record's own canonical content (sequence number, time, run, step, event,
data), so that editing, removing or reordering any record breaks the chain at that
record, and nobody without the key can recompute the chain after an edit. Cutting
records off the end is detected by the head kept outside the chain (``audit_head``), or
against a head a person kept (``verify(anchor=...)``). Secret values are replaced by
``***`` before a record is written.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from luminaguard.scheduler.audit_head import HeadFile
from luminaguard.scheduler.audit_key import GENESIS, AuditKey
from luminaguard.scheduler.redact import Redactor

__all__ = ["GENESIS", "AuditLog", "AuditRecord", "Redactor"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    run_id TEXT NOT NULL,
    step_id TEXT,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
-- a run's, or a step's, records (approvals, votes, run.created) without reading the log
CREATE INDEX IF NOT EXISTS audit_step ON audit (run_id, step_id, event);
CREATE INDEX IF NOT EXISTS audit_event ON audit (run_id, event);
"""
_COLUMNS = "seq, time, run_id, step_id, event, data, prev, hash"


@dataclass(frozen=True)
class AuditRecord:
    """One audited event."""

    seq: int
    time: float
    run_id: str
    step_id: str | None
    event: str
    data: dict[str, Any]
    prev: str
    hash: str


Row = tuple[int, float, str, str | None, str, str, str, str]


class AuditLog:
    """The HMAC-chained audit table inside the run database, and its head outside it."""

    def __init__(
        self,
        db: sqlite3.Connection,
        redact: Redactor | None,
        key: Callable[[], AuditKey],
        head: HeadFile,
        *,
        create: bool = True,
    ) -> None:
        self.db = db
        self.redact = redact or Redactor()
        self._key_source = key
        self._key: AuditKey | None = None
        self.head_file = head
        #: verify from the last record this process verified, not from the first (a
        #: server: its approval latency would grow with the log); see ``verify``
        self.incremental = False
        self._verified: tuple[int, str] | None = None
        self._create = create
        if create:  # a read-only store writes nothing
            db.executescript(SCHEMA)

    @property
    def key(self) -> AuditKey:
        """The audit key (read, or made for a new log, when first needed)."""
        if self._key is None:
            self._key = self._key_source()
            if self._create:
                self.head_file.start(self.db, self._key)
        return self._key

    def ready(self) -> None:
        """Read (or, for a new log, make) the key now, before a transaction begins."""
        _ = self.key

    def append(self, run_id: str, step_id: str | None, event: str, data: dict[str, Any]) -> None:
        """Add a record; the caller's transaction commits it together with the state change."""
        key = self.key
        last = self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        text = json.dumps(self.redact.value(data), sort_keys=True, default=str)
        when = time.time()
        digest = key.record_hash(prev, seq, when, run_id, step_id, event, text)
        self.db.execute(
            f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, when, run_id, step_id, event, text, prev, digest),
        )

    def seal(self) -> None:
        """Record the newest committed record as the head (after each durable commit)."""
        self.head_file.seal(self.db, self.key)

    def records(
        self, run_id: str | None = None, step_id: str | None = None, event: str | None = None
    ) -> list[AuditRecord]:
        """Every record in order, or those of one run (and step, and event)."""
        clauses, params = [], []
        for column, value in (("run_id", run_id), ("step_id", step_id), ("event", event)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        query = f"SELECT {_COLUMNS} FROM audit{where} ORDER BY seq"
        return [_record(r) for r in self.db.execute(query, params).fetchall()]

    def authentic(self, record: AuditRecord) -> bool:
        """Whether the record is as written by a holder of the key (its HMAC matches)."""
        text = self.db.execute("SELECT data FROM audit WHERE seq = ?", (record.seq,)).fetchone()
        return text is not None and self._matches(
            (record.seq, record.time, record.run_id, record.step_id, record.event,
             text[0], record.prev, record.hash)
        )  # fmt: skip

    def _matches(self, row: Row) -> bool:
        seq, when, run_id, step_id, event, data, prev, digest = row
        expected = self.key.record_hash(prev, seq, when, run_id, step_id, event, data)
        return hmac.compare_digest(expected, digest)

    def head(self) -> str:
        """Hash of the newest record; keep it elsewhere to detect a truncated log."""
        last = self.db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return str(last[0]) if last else GENESIS

    def count(self) -> int:
        """The number of the newest record (0 for an empty log)."""
        last = self.db.execute("SELECT MAX(seq) FROM audit").fetchone()
        return int(last[0] or 0)

    def verify(self, anchor: str | None = None) -> list[str]:
        """Every break in the chain, each naming the record; empty when the log is intact.

        Beyond the links, the log must reach its sealed head and, when given, hold the
        ``anchor`` (a head a person kept elsewhere).
        """
        problems: list[str] = []
        key_problem = self.head_file.key_problem(self.key)
        if key_problem:
            return [key_problem]
        prev, expected_seq = GENESIS, 1
        if anchor is None and self.incremental:
            prev, expected_seq = self._resume_point()
        hashes: set[str] = {GENESIS}
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM audit WHERE seq >= ? ORDER BY seq", (expected_seq,)
        ).fetchall()
        for row in rows:
            seq, stored_prev, stored_hash = row[0], row[6], row[7]
            if seq != expected_seq:
                problems.append(
                    f"record {seq}: expected record {expected_seq} here (records removed)"
                )
            if stored_prev != prev:
                problems.append(
                    f"record {seq}: does not follow record {seq - 1} (removed or reordered)"
                )
            if not self._matches(row):
                problems.append(f"record {seq}: content does not match its hash (edited)")
            prev, expected_seq = stored_hash, seq + 1
            hashes.add(stored_hash)
        problems += self.head_file.problems(self.db, self.key)
        if not problems:
            self._verified = (expected_seq - 1, prev)
        if anchor is not None and anchor not in hashes:
            problems.append(
                f"anchor {anchor} is not in the log: records removed or rewritten since it was kept"
            )
        return problems

    def _resume_point(self) -> tuple[str, int]:
        """Where an incremental check starts: after the last record verified, if it stands.

        It stands when that record still has the hash it had and no record before it is
        missing (as many records as its number); else the whole log is verified again.
        An edit inside the verified part is found by ``audit verify`` and at the next
        start; the records a decision relies on are each checked (``authentic``) anyway.
        """
        if self._verified is None:
            return GENESIS, 1
        seq, digest = self._verified
        row = self.db.execute(
            "SELECT hash, (SELECT COUNT(*) FROM audit WHERE seq <= ?) FROM audit WHERE seq = ?",
            (seq, seq),
        ).fetchone()
        if row is None or row[0] != digest or row[1] != seq:
            return GENESIS, 1
        return digest, seq + 1


def _record(row: Row) -> AuditRecord:
    return AuditRecord(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], row[7])

"""The audit log: append-only, each record hash-chained to the one before it.

A record's hash is SHA-256 over the previous record's hash and the record's own
canonical content (sequence number, time, run, step, event, data), so that editing,
removing or reordering any record breaks the chain at that record. Secret values
are replaced by ``***`` before a record is written. (Cutting records off the end
is not detectable by the chain alone; see ``AuditLog.head``.)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from luminaguard.scheduler.redact import Redactor as Redactor

GENESIS = "sha256:" + "0" * 64

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
"""


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


def record_hash(
    prev: str, seq: int, when: float, run_id: str, step_id: str | None, event: str, data: str
) -> str:
    """The chained hash of one record."""
    body = json.dumps([prev, seq, repr(when), run_id, step_id, event, data], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


class AuditLog:
    """The hash-chained audit table inside the run database."""

    def __init__(self, db: sqlite3.Connection, redact: Redactor | None = None) -> None:
        self.db = db
        self.redact = redact or Redactor()
        db.executescript(SCHEMA)

    def append(self, run_id: str, step_id: str | None, event: str, data: dict[str, Any]) -> None:
        """Add a record; the caller's transaction commits it together with the state change."""
        last = self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        text = json.dumps(self.redact.value(data), sort_keys=True, default=str)
        when = time.time()
        digest = record_hash(prev, seq, when, run_id, step_id, event, text)
        self.db.execute(
            "INSERT INTO audit (seq, time, run_id, step_id, event, data, prev, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, when, run_id, step_id, event, text, prev, digest),
        )

    def records(self, run_id: str | None = None) -> list[AuditRecord]:
        """Every record in order, or those of one run."""
        query = "SELECT seq, time, run_id, step_id, event, data, prev, hash FROM audit"
        rows = self.db.execute(query + (" WHERE run_id = ?" if run_id else "") + " ORDER BY seq",
                               (run_id,) if run_id else ()).fetchall()  # fmt: skip
        return [
            AuditRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7]) for r in rows
        ]

    def head(self) -> str:
        """Hash of the newest record; keep it elsewhere to detect a truncated log."""
        last = self.db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return str(last[0]) if last else GENESIS

    def verify(self) -> list[str]:
        """Every break in the chain, each naming the record; empty when the log is intact."""
        problems: list[str] = []
        prev, expected_seq = GENESIS, 1
        rows = self.db.execute(
            "SELECT seq, time, run_id, step_id, event, data, prev, hash FROM audit ORDER BY seq"
        ).fetchall()
        for seq, when, run_id, step_id, event, data, stored_prev, stored_hash in rows:
            if seq != expected_seq:
                problems.append(
                    f"record {seq}: expected record {expected_seq} here (records removed)"
                )
            if stored_prev != prev:
                problems.append(
                    f"record {seq}: does not follow record {seq - 1} (removed or reordered)"
                )
            if record_hash(stored_prev, seq, when, run_id, step_id, event, data) != stored_hash:
                problems.append(f"record {seq}: content does not match its hash (edited)")
            prev, expected_seq = stored_hash, seq + 1
        return problems

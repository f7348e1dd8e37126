"""What the reconciler applied: each object's spec and revision, and the source's status.

Kept in the state folder's runs.db beside the runs, each change in one transaction with
its audit record (``gitops.applied``, ``gitops.removed``, ``gitops.source``), under the
run id ``:gitops`` (a name no run can have). The actual state of an object is compared
with this record: a pool whose live size differs, a policy in force that is not the one
applied, is ``Drifted``.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass
from typing import Any

from luminaguard.scheduler.store import RunStore

TYPE_CHECKING = False  # mypy treats this name as true
if TYPE_CHECKING:
    from luminaguard.gitops.desired import DesiredObject, Key  # the compiler: not to read

AUDIT_RUN = ":gitops"
SCHEMA = """
CREATE TABLE IF NOT EXISTS gitops_objects (
    kind TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL, hash TEXT NOT NULL,
    revision TEXT NOT NULL, path TEXT NOT NULL, applied REAL NOT NULL,
    state TEXT NOT NULL, reason TEXT NOT NULL, extra TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS gitops_source (
    id INTEGER PRIMARY KEY CHECK (id = 1), url TEXT NOT NULL, revision TEXT,
    attempted TEXT, state TEXT NOT NULL, reason TEXT NOT NULL, updated REAL NOT NULL
);
"""
_OBJECT_COLUMNS = "kind, name, spec, hash, revision, path, applied, state, reason, extra"


class Condition(enum.StrEnum):
    """How an object (or the source) stands, as Flux says it."""

    READY = "Ready"  # applied as the source has it
    RECONCILING = "Reconciling"  # being applied
    STALLED = "Stalled"  # cannot be applied: the reason says why; the last good stays
    DRIFTED = "Drifted"  # what runs differs from what was applied


@dataclass(frozen=True)
class AppliedObject:
    """One object as applied: its spec, revision, condition and what else it keeps."""

    kind: str
    name: str
    spec: dict[str, Any]
    hash: str
    revision: str
    path: str
    applied: float
    state: Condition
    reason: str
    extra: dict[str, Any]

    @property
    def key(self) -> Key:
        """(kind, name)."""
        return (self.kind, self.name)


@dataclass(frozen=True)
class SourceStatus:
    """The source: what it is, the revision applied, the one last tried, how it stands."""

    url: str
    revision: str | None
    attempted: str | None
    state: Condition
    reason: str
    updated: float


class AppliedState:
    """The applied objects and the source status of one state folder."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        if not store.read_only:  # a read-only store (status on a full disk) writes nothing
            store.db.executescript(SCHEMA)

    def objects(self) -> dict[Key, AppliedObject]:
        """Every applied object."""
        rows = self.store.db.execute(
            f"SELECT {_OBJECT_COLUMNS} FROM gitops_objects ORDER BY kind, name"
        ).fetchall()
        made = [_applied(row) for row in rows]
        return {item.key: item for item in made}

    def record(self, desired: DesiredObject, extra: dict[str, Any] | None = None) -> None:
        """Record ``desired`` as applied (Ready), keeping or replacing what else it keeps."""
        old = self.objects().get(desired.key)
        kept = {**(old.extra if old else {}), **(extra or {})}
        row = (desired.kind, desired.name, json.dumps(desired.spec, sort_keys=True),
               desired.hash, desired.revision, desired.path, time.time(),
               Condition.READY, "", json.dumps(kept, sort_keys=True))  # fmt: skip
        data = {"kind": desired.kind, "name": desired.name, "hash": desired.hash,
                "revision": desired.revision, "path": desired.path}  # fmt: skip
        self.store._write(
            [(f"INSERT OR REPLACE INTO gitops_objects ({_OBJECT_COLUMNS})"
              " VALUES (?,?,?,?,?,?,?,?,?,?)", row)],
            (AUDIT_RUN, None, "gitops.applied", data),
        )  # fmt: skip

    def update(self, key: Key, state: Condition, reason: str, **extra: Any) -> None:
        """Set an applied object's condition (and merge ``extra`` into what it keeps).

        Audited (``gitops.updated``): what the reconciler keeps (the runs it started, the
        firings) decides what it starts next.
        """
        old = self.objects().get(key)
        if old is None:
            return
        kept = json.dumps({**old.extra, **extra}, sort_keys=True)
        data = {"kind": key[0], "name": key[1], "state": str(state), "reason": reason,
                "extra": extra}  # fmt: skip
        self.store._write(
            [("UPDATE gitops_objects SET state = ?, reason = ?, extra = ?"
              " WHERE kind = ? AND name = ?", (state, reason, kept, *key))],
            (AUDIT_RUN, None, "gitops.updated", data),
        )  # fmt: skip

    def invalidate(self, key: Key, reason: str) -> None:
        """Mark an object not applied after all (a failed build): the next pass applies it."""
        data = {"kind": key[0], "name": key[1], "reason": reason}
        self.store._write(
            [("UPDATE gitops_objects SET hash = '', state = ?, reason = ?"
              " WHERE kind = ? AND name = ?", (Condition.STALLED, reason, *key))],
            (AUDIT_RUN, None, "gitops.invalidated", data),
        )  # fmt: skip

    def run_exists(self, run_id: str) -> bool:
        """Whether a run of this id exists."""
        row = self.store.db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row is not None

    def remove(self, key: Key, revision: str) -> None:
        """Forget an object removed from the source (pruned)."""
        data = {"kind": key[0], "name": key[1], "revision": revision}
        self.store._write(
            [("DELETE FROM gitops_objects WHERE kind = ? AND name = ?", key)],
            (AUDIT_RUN, None, "gitops.removed", data),
        )

    def source(self) -> SourceStatus | None:
        """The source's status, if anything was ever reconciled."""
        row = self.store.db.execute(
            "SELECT url, revision, attempted, state, reason, updated FROM gitops_source"
        ).fetchone()
        if row is None:
            return None
        return SourceStatus(row[0], row[1], row[2], Condition(row[3]), row[4], row[5])

    def set_source(self, url: str, attempted: str | None, state: Condition, reason: str) -> None:
        """Record how the last reconciliation of the source went.

        The applied revision moves to ``attempted`` only when it is Ready; a Stalled
        attempt keeps the last good revision applied.
        """
        old = self.source()
        revision = attempted if state is Condition.READY else (old.revision if old else None)
        if old is not None and (old.url, old.attempted, old.state, old.reason) == (
            url,
            attempted,
            state,
            reason,
        ):
            return  # nothing new: a poll that found the same revision records nothing
        data = {"url": url, "revision": revision, "attempted": attempted,
                "state": str(state), "reason": reason}  # fmt: skip
        self.store._write(
            [("INSERT OR REPLACE INTO gitops_source VALUES (1, ?, ?, ?, ?, ?, ?)",
              (url, revision, attempted, state, reason, time.time()))],
            (AUDIT_RUN, None, "gitops.source", data),
        )  # fmt: skip


def _applied(row: tuple[Any, ...]) -> AppliedObject:
    return AppliedObject(
        kind=row[0],
        name=row[1],
        spec=json.loads(row[2]),
        hash=row[3],
        revision=row[4],
        path=row[5],
        applied=row[6],
        state=Condition(row[7]),
        reason=row[8],
        extra=json.loads(row[9]),
    )

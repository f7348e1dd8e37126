"""A read-only store writes nothing; a failed write's rollback never hides its cause."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from luminaguard import space
from luminaguard.scheduler import opening
from luminaguard.scheduler.store import RunStore


def test_a_read_only_store_writes_nothing(tmp_path: Path) -> None:
    made = RunStore(tmp_path)
    made.audit.ready()  # the key and the empty head
    made.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    store = RunStore(tmp_path, read_only=True)
    try:
        assert store.read_only and store.audit.verify() == []
        assert store.runs() == []
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.db.execute("INSERT INTO leases VALUES ('r', 1, 1, 1.0)")
    finally:
        store.close()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if not k.startswith("runs.db-")} == before


def test_a_missing_store_is_made_even_when_read_only_is_asked(tmp_path: Path) -> None:
    assert opening.existing(tmp_path / "runs.db") is None
    store = RunStore(tmp_path / "new", read_only=True)
    try:
        assert not store.read_only and store.audit.verify() == []
    finally:
        store.close()


def test_rolling_back_what_sqlite_rolled_back_already_does_nothing() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    opening.roll_back(db)  # no transaction: no "cannot rollback" error
    db.execute("BEGIN")
    opening.roll_back(db)
    assert not db.in_transaction
    db.close()


def test_enospc_is_a_full_disk_and_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(space.DiskFull, match=str(tmp_path)) as raised, space.reported(tmp_path):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert "KiB free" in str(raised.value)
    with pytest.raises(OSError), space.reported(tmp_path):
        raise OSError(errno.EACCES, "Permission denied")

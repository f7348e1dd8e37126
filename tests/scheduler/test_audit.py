"""The audit chain detects edited, removed and reordered records, naming them."""

from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.scheduler.audit import GENESIS, AuditLog, Redactor
from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner


@pytest.fixture
def log(tmp_path: Path) -> tuple[AuditLog, Path]:
    audit = RunStore(tmp_path, Redactor(["hunter2-secret"])).audit
    for i in range(1, 6):
        audit.append("r", f"s{i}", "step.succeeded", {"n": i, "out": "password=hunter2-secret"})
        audit.seal()
    return audit, tmp_path / "runs.db"


def test_intact_chain_verifies(log: tuple[AuditLog, Path]) -> None:
    audit, _ = log
    assert audit.verify() == []
    records = audit.records()
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev == GENESIS and records[1].prev == records[0].hash
    assert audit.head() == records[-1].hash


def test_secrets_are_redacted(log: tuple[AuditLog, Path]) -> None:
    audit, path = log
    assert audit.records()[0].data["out"] == "password=***"
    raw = path.read_bytes()
    assert b"hunter2-secret" not in raw


def test_an_edited_record_is_named(log: tuple[AuditLog, Path]) -> None:
    audit, _ = log
    audit.db.execute("""UPDATE audit SET data = '{"n": 30}' WHERE seq = 3""")
    assert audit.verify() == ["record 3: content does not match its hash (edited)"]


def test_an_edited_event_name_is_named(log: tuple[AuditLog, Path]) -> None:
    audit, _ = log
    audit.db.execute("UPDATE audit SET event = 'step.failed' WHERE seq = 2")
    assert audit.verify() == ["record 2: content does not match its hash (edited)"]


def test_a_removed_record_is_named(log: tuple[AuditLog, Path]) -> None:
    audit, _ = log
    audit.db.execute("DELETE FROM audit WHERE seq = 2")
    problems = audit.verify()
    assert "record 3: expected record 2 here (records removed)" in problems
    assert "record 3: does not follow record 2 (removed or reordered)" in problems


def test_reordered_records_are_named(log: tuple[AuditLog, Path]) -> None:
    audit, _ = log
    audit.db.execute("UPDATE audit SET seq = -1 WHERE seq = 2")
    audit.db.execute("UPDATE audit SET seq = 2 WHERE seq = 4")
    audit.db.execute("UPDATE audit SET seq = 4 WHERE seq = -1")
    problems = audit.verify()
    assert any(p.startswith("record 2:") for p in problems)
    assert any(p.startswith("record 4:") for p in problems)


def test_a_rehashed_edit_breaks_the_next_link(log: tuple[AuditLog, Path]) -> None:
    """Recomputing the edited record's own hash (even with the key) breaks the next link."""
    audit, _ = log
    row = audit.db.execute(
        "SELECT seq, time, run_id, step_id, event, prev FROM audit WHERE seq = 3"
    ).fetchone()
    forged = audit.key.record_hash(row[5], row[0], row[1], row[2], row[3], row[4], '{"n": 30}')
    audit.db.execute("UPDATE audit SET data = '{\"n\": 30}', hash = ? WHERE seq = 3", (forged,))
    assert audit.verify() == ["record 4: does not follow record 3 (removed or reordered)"]


def test_cli_verify_names_the_record(cli: CliRunner, log: tuple[AuditLog, Path]) -> None:
    audit, path = log
    state = str(path.parent)
    assert cli("audit", "verify", "--state", state).code == 0
    shown = cli("audit", "show", "--state", state)
    assert "step.succeeded" in shown.out and "hunter2-secret" not in shown.out
    assert cli("audit", "show", "r", "--json", "--state", state).out.count("\n") == 5
    audit.db.execute("UPDATE audit SET step_id = 'x' WHERE seq = 4")
    result = cli("audit", "verify", "--state", state)
    assert result.code == 1
    assert result.out == "audit: record 4: content does not match its hash (edited)\n"


def _append(audit: AuditLog, *numbers: int) -> None:
    for i in numbers:
        audit.append("r", f"s{i}", "step.succeeded", {"n": i})
        audit.seal()


def test_incremental_checks_only_the_new_records_and_still_finds_their_edits(
    log: tuple[AuditLog, Path],
) -> None:
    audit, _ = log
    audit.incremental = True
    assert audit.verify() == []  # the first check is whole: 1..5 verified
    audit.db.execute("""UPDATE audit SET data = '{"n": 30}' WHERE seq = 3""")
    _append(audit, 6, 7)
    audit.db.execute("""UPDATE audit SET data = '{"n": 70}' WHERE seq = 7""")
    # record 3 is behind the verified point: not read again; record 7 is new: checked
    assert audit.verify() == ["record 7: content does not match its hash (edited)"]
    audit.incremental = False  # `audit verify`, or a new process: the whole log
    assert audit.verify() == [
        "record 3: content does not match its hash (edited)",
        "record 7: content does not match its hash (edited)",
    ]


@pytest.mark.parametrize(
    "tamper",
    [
        "DELETE FROM audit WHERE seq = 2",  # a record missing before the verified point
        "UPDATE audit SET hash = 'x' WHERE seq = 5",  # the verified point itself changed
    ],
)
def test_incremental_starts_over_when_the_verified_part_changed_shape(
    log: tuple[AuditLog, Path], tamper: str
) -> None:
    audit, _ = log
    audit.incremental = True
    assert audit.verify() == []
    audit.db.execute(tamper)
    _append(audit, 6)
    assert audit.verify() != []  # verified from the first record again: found

"""Issue #10, section 7: the audit log is keyed and headed; runs.db is trusted only with it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import CliRunner, Writer
from tests.integration.conftest import sandbox  # noqa: F401 (the fixture)
from tests.security.halted_run import halt, shipped, sql, workload

pytestmark = pytest.mark.usefixtures("sandbox")


def _approve(cli: CliRunner, state: Path) -> None:
    assert cli("approve", "r", "ship", "--state", str(state), "--as", "alice").code == 0


def _count(state: Path) -> int:
    db = sqlite3.connect(state / "runs.db")
    try:
        return int(db.execute("SELECT MAX(seq) FROM audit").fetchone()[0])
    finally:
        db.close()


def _unkeyed(prev: str, seq: int, when: float, run: str, step: str | None, event: str,
             data: str) -> str:  # fmt: skip
    """The chain's hash as anyone can compute it without a key (SHA-256 of the record)."""
    body = json.dumps([prev, seq, repr(when), run, step, event, data], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def _rewrite(state: Path, seq: int, data: str) -> None:
    """Replace record ``seq``'s data and recompute every hash from there on."""
    db = sqlite3.connect(state / "runs.db", isolation_level=None)
    try:
        rows = db.execute(
            "SELECT seq, time, run_id, step_id, event, data, prev FROM audit WHERE seq >= ?"
            " ORDER BY seq",
            (seq,),
        ).fetchall()
        prev = rows[0][6]
        for number, when, run, step, event, text, _ in rows:
            text = data if number == seq else text
            digest = _unkeyed(prev, number, when, run, step, event, text)
            db.execute(
                "UPDATE audit SET data = ?, prev = ?, hash = ? WHERE seq = ?",
                (text, prev, digest, number),
            )
            prev = digest
    finally:
        db.close()


def test_cutting_records_off_the_end_is_detected(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: deleting the last audit records passed `audit verify`.

    Fixed by b39c386 ("one driver per run: ...; private, keyed state"): the head is
    sealed in audit.head.
    """
    state = tmp_path / "state"
    halt(cli, workload(write), state)
    _approve(cli, state)
    last = _count(state)
    sql(state, "DELETE FROM audit WHERE seq > ?", last - 2)
    result = cli("audit", "verify", "--state", str(state))
    assert result.code == 1
    assert f"record {last - 1}: missing; the log ends at record {last - 2}" in result.out
    resumed = cli("resume", "r", "--state", str(state))
    assert resumed.code == 1 and f"record {last - 1}: missing" in resumed.err
    assert shipped(state) == 0
    # the next honest write does not seal the shortened log: the evidence stays
    sql(state, "UPDATE approvals SET state = 'pending'")
    assert cli("deny", "r", "ship", "--state", str(state), "--as", "bob").code == 0
    again = cli("audit", "verify", "--state", str(state))
    assert again.code == 1  # deny wrote two records: a new one stands at the head's place
    assert f"record {last}: is not the record sealed as the head" in again.out


def test_a_rewritten_record_with_recomputed_hashes_is_detected(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: rewriting a record and recomputing the hashes after it passed `audit verify`.

    Here the attacker turns the audited Red decision into a Green one. Fixed by
    b39c386 ("one driver per run: ...; private, keyed state"): the chain is an HMAC under
    a key the attacker does not have.
    """
    state = tmp_path / "state"
    halt(cli, workload(write), state)
    db = sqlite3.connect(state / "runs.db")
    seq, text = db.execute(
        "SELECT seq, data FROM audit WHERE event = 'decision' AND step_id = 'ship'"
    ).fetchone()
    db.close()
    _rewrite(state, seq, text.replace('"risk": "red"', '"risk": "green"'))
    result = cli("audit", "verify", "--state", str(state))
    assert result.code == 1
    assert result.out.splitlines()[0] == (
        f"audit: record {seq}: content does not match its hash (edited)"
    )


def test_an_anchor_kept_elsewhere_detects_a_rolled_back_log(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: cut the log back to an earlier point and put back the head saved then.

    Consistent with itself, so only a head a person kept elsewhere shows it: `audit
    verify --anchor HASH`. Fixed by b39c386 ("one driver per run: ...; private, keyed state").
    """
    state = tmp_path / "state"
    halt(cli, workload(write), state)
    saved_count, saved_head = _count(state), (state / "audit.head").read_bytes()
    _approve(cli, state)
    kept = cli("audit", "head", "--state", str(state))
    assert kept.code == 0
    count, anchor = kept.out.split()
    assert int(count) == _count(state) > saved_count
    assert cli("audit", "verify", "--state", str(state), "--anchor", anchor).code == 0

    sql(state, "DELETE FROM audit WHERE seq > ?", saved_count)
    (state / "audit.head").write_bytes(saved_head)
    assert cli("audit", "verify", "--state", str(state)).code == 0  # consistent with itself
    result = cli("audit", "verify", "--state", str(state), "--anchor", anchor)
    assert result.code == 1
    assert f"audit: anchor {anchor} is not in the log" in result.out


def test_an_approval_set_in_runs_db_does_not_run_the_step(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: `UPDATE approvals SET state = 'approved'` in runs.db made `resume` run the step.

    Fixed by b39c386 ("one driver per run: ...; private, keyed state"): a Red step runs
    only with an authentic `approval.approved` audit record for its action hash.
    """
    state = tmp_path / "state"
    halt(cli, workload(write), state)
    sql(state, "UPDATE approvals SET state = 'approved', approver = 'alice', decided = 1")
    result = cli("resume", "r", "--state", str(state))
    assert shipped(state) == 0
    assert result.code == 2, result.out + result.err
    assert "the approval in runs.db has no audit record" in result.out


def test_an_edited_stored_plan_is_refused(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    """Attack: editing the plan stored in runs.db (the Red step's decision made Green) ran it.

    Fixed by b39c386 ("one driver per run: ...; private, keyed state"): the plan a run
    resumes must hash to the value audited when the run started.
    """
    state = tmp_path / "state"
    halt(cli, workload(write), state)
    db = sqlite3.connect(state / "runs.db", isolation_level=None)
    plan = json.loads(db.execute("SELECT plan FROM runs WHERE id = 'r'").fetchone()[0])
    ship = next(step for step in plan["steps"] if step["id"] == "ship")
    ship["decision"]["risk"] = "green"
    text = json.dumps(plan, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    db.execute("UPDATE runs SET plan = ? WHERE id = 'r'", (text,))
    db.execute("UPDATE steps SET state = 'pending' WHERE step_id = 'ship'")
    db.close()
    result = cli("resume", "r", "--state", str(state))
    assert shipped(state) == 0
    assert result.code == 1
    assert "the stored plan is not the plan the run started with" in result.err


def test_resume_refuses_a_log_with_an_edited_record(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: `resume` ran while `audit verify` reported an edited record.

    Fixed by b39c386 ("one driver per run: ...; private, keyed state"): resume names the
    first bad record, exit 1.
    """
    state = tmp_path / "state"
    halt(cli, workload(write), state)
    _approve(cli, state)
    db = sqlite3.connect(state / "runs.db")
    [(seq,)] = db.execute(
        "SELECT seq FROM audit WHERE event = 'decision' AND step_id = 'ship'"
    ).fetchall()
    db.close()
    sql(state, """UPDATE audit SET data = '{"risk": "green"}' WHERE seq = ?""", seq)
    result = cli("resume", "r", "--state", str(state))
    assert result.code == 1
    assert f"record {seq}: content does not match its hash (edited)" in result.err
    assert shipped(state) == 0


def _rekey_chain(state: Path, secret: str) -> None:
    """Recompute every record's hash, and the head, under the key ``secret``."""
    from luminaguard.scheduler.audit_head import AuditHead, HeadFile
    from luminaguard.scheduler.audit_key import GENESIS, AuditKey

    (state / "audit.key").write_text(secret)
    (state / "audit.key").chmod(0o600)
    key = AuditKey.read(state / "audit.key")
    db = sqlite3.connect(state / "runs.db", isolation_level=None)
    try:
        rows = db.execute(
            "SELECT seq, time, run_id, step_id, event, data FROM audit ORDER BY seq"
        ).fetchall()
        prev = GENESIS
        for seq, when, run, step, event, text in rows:
            digest = key.record_hash(prev, seq, when, run, step, event, text)
            db.execute("UPDATE audit SET prev = ?, hash = ? WHERE seq = ?", (prev, digest, seq))
            prev = digest
    finally:
        db.close()
    HeadFile(state)._write(AuditHead(len(rows), prev), key)


def test_an_external_key_keeps_a_state_folder_writer_from_forging(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: whoever can write the state folder rekeys the whole chain with a key of theirs.

    With `--audit-key FILE` kept outside the state folder, the forgery does not verify
    and `resume` refuses. Fixed by b39c386 ("one driver per run: ...; private, keyed
    state").
    """
    state, key = tmp_path / "state", tmp_path / "keys" / "audit.key"
    key.parent.mkdir()
    key.write_text("6b" * 32 + "\n")
    key.chmod(0o600)
    keyed = ("--state", str(state), "--audit-key", str(key))
    assert cli("run", workload(write), "--run-id", "r", *keyed).code == 3
    assert not (state / "audit.key").exists()
    unkeyed = cli("audit", "verify", "--state", str(state))
    assert unkeyed.code == 1 and "--audit-key" in unkeyed.err
    assert cli("approve", "r", "ship", "--as", "alice", *keyed).code == 0

    sql(state, """UPDATE audit SET data = '{"by": "nobody"}' WHERE event = 'approval.approved'""")
    _rekey_chain(state, "66" * 32 + "\n")
    assert cli("audit", "verify", "--state", str(state)).code == 0  # under the forger's key
    result = cli("audit", "verify", *keyed)
    assert result.code == 1 and "is not the key audit.head was sealed with" in result.out
    resumed = cli("resume", "r", *keyed)
    assert resumed.code == 1 and "does not verify" in resumed.err
    assert shipped(state) == 0

    key.chmod(0o644)
    loose = cli("audit", "verify", *keyed)
    assert loose.code == 1 and "readable by others (mode 644)" in loose.err


def test_a_step_reset_in_runs_db_does_not_run_again(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: after an approved Red step ran (and failed), resetting it to pending in
    runs.db made `resume` run it again on the same approval: one approval, two effects.

    Fixed by 6ca1555 ("audited: a run is driven only when each step is in the state its
    latest audit record says").
    """
    state = tmp_path / "state"
    halt(cli, workload(write, ship="echo shipped >> /work/ship.log; exit 1"), state)
    _approve(cli, state)
    assert cli("resume", "r", "--state", str(state)).code == 2
    assert shipped(state) == 1
    sql(state, "UPDATE steps SET state = 'pending', error = NULL WHERE step_id = 'ship'")
    sql(state, "UPDATE runs SET state = 'halted'")
    result = cli("resume", "r", "--state", str(state))
    assert shipped(state) == 1
    assert result.code == 1
    assert "step ship is pending in runs.db but failed in the audit log" in result.err


def test_wiping_the_log_with_its_key_and_head_is_not_a_fresh_start(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: delete every audit record, the key and the head; the runs stay in runs.db.

    Before, an empty log verified. Now a state with runs but no key is refused instead of
    getting a new key. Fixed by 7401a11 ("audit key: a state with runs is never given a
    new key; ...").
    """
    state = tmp_path / "state"
    halt(cli, workload(write), state)
    _approve(cli, state)
    sql(state, "DELETE FROM audit")
    for name in ("audit.key", "audit.head"):
        (state / name).unlink(missing_ok=True)
    result = cli("audit", "verify", "--state", str(state))
    assert result.code == 1 and "audit.key is missing" in result.err
    resumed = cli("resume", "r", "--state", str(state))
    assert resumed.code == 1 and "audit.key is missing" in resumed.err
    assert shipped(state) == 0

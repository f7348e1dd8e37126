"""``RunStore``: runs, steps, attempts and approvals in SQLite (WAL), written before effects.

Each change is one transaction that also appends its audit record, so the state and
the audit log never disagree. The runner reads its plan back from here on resume, and
trusts it, and an approval, only with its audit record (``audited``). The state folder
is private (0700, files 0600).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luminaguard import space
from luminaguard.errors import UsageError
from luminaguard.scheduler import guards, lease, opening, question_table
from luminaguard.scheduler.audit import SCHEMA as AUDIT_SCHEMA
from luminaguard.scheduler.audit import AuditLog, Redactor
from luminaguard.scheduler.audit_head import HeadFile
from luminaguard.scheduler.audit_key import state_key
from luminaguard.scheduler.lease import RunLease
from luminaguard.scheduler.private import (
    check_run_id,
    make_private,
    private_file,
    private_folder,
)
from luminaguard.scheduler.states import ApprovalState, RunState, StateError, StepState

TYPE_CHECKING = False  # mypy treats this name as true
if TYPE_CHECKING:
    from luminaguard.compiler.plan import Plan  # imported when a plan is read

log = logging.getLogger("luminaguard.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, workload TEXT NOT NULL, plan_hash TEXT NOT NULL, plan TEXT NOT NULL,
    backend TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step_id TEXT NOT NULL, position INTEGER NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, action_hash TEXT, outputs TEXT, error TEXT,
    updated REAL NOT NULL, PRIMARY KEY (run_id, step_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL, step_id TEXT NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL,
    started REAL NOT NULL, finished REAL, error TEXT, PRIMARY KEY (run_id, step_id, attempt)
);
CREATE TABLE IF NOT EXISTS approvals (
    run_id TEXT NOT NULL, step_id TEXT NOT NULL, action_hash TEXT NOT NULL, state TEXT NOT NULL,
    card TEXT NOT NULL, requested REAL NOT NULL, expires REAL NOT NULL, decided REAL,
    approver TEXT, reason TEXT, PRIMARY KEY (run_id, step_id, action_hash)
);
"""


_INSERT_RUN = "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_STEP = (
    "INSERT INTO steps (run_id, step_id, position, state, updated) VALUES (?, ?, ?, ?, ?)"
)
_SET_STEP = "UPDATE steps SET state = ?, error = ?, updated = ? WHERE run_id = ? AND step_id = ?"
_START_STEP = (
    "UPDATE steps SET state = ?, attempts = ?, action_hash = ?, error = NULL, updated = ?"
    " WHERE run_id = ? AND step_id = ?"
)
_INSERT_ATTEMPT = "INSERT INTO attempts VALUES (?, ?, ?, ?, ?, NULL, NULL)"
_FINISH_ATTEMPT = (
    "UPDATE attempts SET state = ?, finished = ?, error = ?"
    " WHERE run_id = ? AND step_id = ? AND attempt = ?"
)
_FINISH_STEP = (
    "UPDATE steps SET state = ?, outputs = ?, error = ?, updated = ?"
    " WHERE run_id = ? AND step_id = ?"
)
_SELECT_APPROVALS = (
    "SELECT run_id, step_id, action_hash, state, card, requested, expires, decided, approver,"
    " reason FROM approvals"
)
_INSERT_APPROVAL = (
    "INSERT INTO approvals (run_id, step_id, action_hash, state, card, requested, expires)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_HALT_STEP = (
    "UPDATE steps SET state = ?, action_hash = ?, updated = ? WHERE run_id = ? AND step_id = ?"
)
_DECIDE_APPROVAL = (
    "UPDATE approvals SET state = ?, decided = ?, approver = ?, reason = ?"
    " WHERE run_id = ? AND step_id = ? AND action_hash = ?"
)


@dataclass(frozen=True)
class RunRecord:
    """A run as stored; its plan is read from its text when first asked for.

    Listing runs, or deciding a step, needs no plan: reading one loads the config models.
    """

    id: str
    workload: str
    plan_text: str = field(repr=False)
    backend: str
    state: RunState
    created: float
    updated: float

    @functools.cached_property
    def plan(self) -> Plan:
        """The compiled plan the run follows."""
        from luminaguard.compiler.plan import Plan  # its models: only for a run's plan

        return Plan.model_validate_json(self.plan_text)


@dataclass(frozen=True)
class StepRecord:
    """A step's state within a run (``StepState``), its attempts and what it produced."""

    step_id: str
    state: StepState
    attempts: int
    action_hash: str | None
    outputs: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class ApprovalRecord:
    """An approval request for one exact action of one step."""

    run_id: str
    step_id: str
    action_hash: str
    state: ApprovalState
    card: dict[str, Any]
    requested: float
    expires: float
    decided: float | None
    approver: str | None
    reason: str | None


class AlreadyApproved(StateError):
    """The approver approved this action already: a name counts once."""


#: One approval as audited: the approver's name and, when known, their token's role.
Vote = tuple[str, str | None]
Statement = tuple[str, tuple[Any, ...]]
AuditEntry = tuple[str, str | None, str, dict[str, Any]]


class RunStore:
    """Durable run state; one SQLite database per state folder."""

    def __init__(
        self,
        state_dir: Path,
        redact: Redactor | None = None,
        audit_key: Path | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        """Open (or make) the store; ``read_only`` writes nothing to an existing one.

        Read-only commands (status, audit verify) so work on a full disk. ``DiskFull``
        when the state folder's file system has no space left for what must be written.
        """
        with space.reported(state_dir):
            db = opening.existing(state_dir / "runs.db") if read_only else None
            self.state_dir = state_dir if db else private_folder(state_dir)
            self.db = db or self._open()
        #: opened read-only: no write may be tried (``gitops.applied`` makes no table)
        self.read_only = db is not None
        self._fsync = True
        self._data_version = -1
        #: called after every commit of this process (a server publishes events from them)
        self.on_commit: list[Callable[[], None]] = []
        self.audit = AuditLog(
            self.db,
            redact,
            lambda: state_key(state_dir, audit_key, self._has_history()),
            HeadFile(state_dir),
            create=db is None,
        )

    def _open(self) -> sqlite3.Connection:
        private_folder(self.state_dir / "runs")
        path = private_file(self.state_dir / "runs.db")
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            make_private(*(path.with_name(f"runs.db{suffix}") for suffix in ("-wal", "-shm")))
            db.executescript(SCHEMA + lease.SCHEMA + question_table.SCHEMA + AUDIT_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _has_history(self) -> bool:
        # a state with runs or records has a key already: its loss is never a fresh start
        runs = self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        return bool(runs) or self.audit.count() > 0

    def has_table(self, name: str) -> bool:
        """Whether the database has the table ``name`` (a read-only store makes none)."""
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return self.db.execute(sql, (name,)).fetchone() is not None

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside the ``with`` see one consistent state of the database."""
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def _durability(self, fsync: bool) -> None:
        # WAL with synchronous=NORMAL survives a crash of this process (kill -9) but not
        # a power loss; FULL fsyncs every commit. Only steps safe to repeat use NORMAL.
        if fsync != self._fsync:
            self.db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._fsync = fsync

    def _write(
        self,
        statements: list[Statement],
        *audits: AuditEntry,
        fsync: bool = True,
        guards: tuple[Callable[[], None], ...] = (),
    ) -> None:
        """Run ``statements`` and append the audit records in one transaction.

        ``guards`` run first inside the transaction, in order; each may refuse the write.
        """
        self._transaction(lambda: (statements, audits), bool(audits), fsync, guards)

    def _transaction(
        self,
        compose: Callable[[], tuple[list[Statement], tuple[AuditEntry, ...]]],
        audited: bool,
        fsync: bool = True,
        guards: tuple[Callable[[], None], ...] = (),
    ) -> None:
        """``_write`` of what ``compose`` returns, composed inside the transaction.

        ``audited``: whether it appends audit records (the key is made ready first).
        """
        with space.reported(self.state_dir):
            self._durability(fsync)
            if audited:
                self.audit.ready()
            audits = self._commit(compose, guards)
        if audits and fsync:
            self._seal()  # the head follows every durable write
        for listener in self.on_commit:
            try:
                listener()
            except Exception:  # committed: a listener's failure is not the write's
                log.exception("a commit listener failed")

    def _commit(
        self,
        compose: Callable[[], tuple[list[Statement], tuple[AuditEntry, ...]]],
        guards: tuple[Callable[[], None], ...],
    ) -> tuple[AuditEntry, ...]:
        """One transaction: the guards, the statements, the audit records; all or nothing."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for guard in guards:
                guard()
            statements, audits = compose()
            for sql, params in statements:
                self.db.execute(sql, params)
            for audit in audits:
                self.audit.append(*audit)
            self.db.execute("COMMIT")
        except BaseException:
            opening.roll_back(self.db)
            raise
        return audits

    def _seal(self) -> None:
        """Seal the head; a full disk leaves the old head, which the log still reaches."""
        try:
            self.audit.seal()
        except OSError as exc:
            if not space.is_full(exc, self.state_dir):
                raise
            log.warning("the audit head was not sealed (%s): the next durable write seals it", exc)

    # --- runs -------------------------------------------------------------------------
    def create_run(
        self, run_id: str, plan: Plan, backend: str, started_by: dict[str, str] | None = None
    ) -> None:
        """Record a new run and its steps, all pending, and who started it.

        The audit record holds the hash of the plan exactly as stored, so that an edit of
        the stored plan is seen when the run is driven again.
        """
        check_run_id(run_id)
        now = time.time()
        text = plan.to_json()
        row = (run_id, plan.workload, plan.hash, text, backend, RunState.RUNNING, now, now)
        statements: list[Statement] = [(_INSERT_RUN, row)]
        pending = StepState.PENDING
        statements += [(_INSERT_STEP, (run_id, s.id, s.order, pending, now)) for s in plan.steps]
        data = {
            "workload": plan.workload, "plan_hash": plan.hash, "backend": backend,
            "stored_plan": text_hash(text), "started_by": started_by or {},
        }  # fmt: skip
        audit = (run_id, None, "run.created", data)
        self._write(statements, audit, guards=(lambda: self._new(run_id),))
        with space.reported(self.state_dir):
            private_folder(self.state_dir / "runs" / run_id)

    def _new(self, run_id: str) -> None:
        # inside the write transaction: two processes creating one run cannot both pass
        if self.db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            raise UsageError(f"run {run_id!r} already exists; resume it or choose another id")

    def lease(self, run_id: str) -> RunLease:
        """Take the exclusive right to drive the run (``LeaseHeld`` names its holder)."""
        self.run(run_id)  # refuses an id that is not a name, or names no run
        with space.reported(self.state_dir):
            private_folder(self.state_dir / "runs" / run_id)  # made 0755 by older versions
            return RunLease.acquire(self.db, self.state_dir / "locks", run_id)

    def run(self, run_id: str) -> RunRecord:
        """The stored run, or a UsageError naming the runs that exist."""
        return self.run_and_plan_text(run_id)[0]

    def run_and_plan_text(self, run_id: str) -> tuple[RunRecord, str]:
        """The stored run and the text its plan was read from (to check against the audit)."""
        check_run_id(run_id)
        row = self.db.execute(
            "SELECT id, workload, plan, backend, state, created, updated FROM runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            known = ", ".join(r.id for r in self.runs()[-5:]) or "none"
            raise UsageError(f"no run {run_id!r} (latest: {known})")
        state = guards.stored_run(run_id, row[4])
        return RunRecord(row[0], row[1], str(row[2]), row[3], state, row[5], row[6]), str(row[2])

    def runs(self) -> list[RunRecord]:
        """Every run, oldest first."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM runs ORDER BY created, id").fetchall()]
        return [self.run(run_id) for run_id in ids]

    def run_states(self) -> dict[str, RunState]:
        """Every run's state, without reading its plan (oldest first)."""
        rows = self.db.execute("SELECT id, state FROM runs ORDER BY created, id").fetchall()
        return {row[0]: guards.stored_run(row[0], row[1]) for row in rows}

    def changed_elsewhere(self) -> bool:
        """Whether another connection committed since this was last asked (``data_version``)."""
        version = int(self.db.execute("PRAGMA data_version").fetchone()[0])
        changed, self._data_version = version != self._data_version, version
        return changed

    def set_run_state(self, run_id: str, state: RunState) -> None:
        """Record the run's overall state (``StateError`` if the run may not move there)."""
        self._write(
            [("UPDATE runs SET state = ?, updated = ? WHERE id = ?", (state, time.time(), run_id))],
            (run_id, None, f"run.{state}", {}),
            guards=(lambda: guards.run_move(self.db, run_id, state),),
        )

    # --- steps --------------------------------------------------------------------------
    def steps(self, run_id: str) -> dict[str, StepRecord]:
        """Every step of the run, in plan order."""
        rows = self.db.execute(
            "SELECT step_id, state, attempts, action_hash, outputs, error FROM steps"
            " WHERE run_id = ? ORDER BY position",
            (run_id,),
        ).fetchall()
        return {r[0]: _step_record(run_id, r) for r in rows}

    def set_step(
        self,
        run_id: str,
        step_id: str,
        state: StepState,
        event: str,
        data: dict[str, Any],
        error: str | None = None,
    ) -> None:
        """Move a step to ``state`` and audit why (``StateError`` if it may not move there)."""
        statement, audit, guard = self._move(run_id, step_id, state, event, data, error)
        self._write([statement], audit, guards=(guard,))

    def _move(
        self,
        run_id: str,
        step_id: str,
        state: StepState,
        event: str,
        data: dict[str, Any],
        error: str | None,
    ) -> tuple[Statement, AuditEntry, Callable[[], None]]:
        error = self.audit.redact.value(error)
        record = {**data, "state": state, **({"error": error} if error else {})}
        return (
            (_SET_STEP, (state, error, time.time(), run_id, step_id)),
            (run_id, step_id, event, record),
            lambda: guards.step_move(self.db, run_id, step_id, state),
        )

    def reopen_steps(self, run_id: str, reopened: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Move failed or skipped steps back to pending, in one transaction: a person's retry.

        ``reopened``: (step, audit event, audit data) each; the store refuses (nothing
        written) unless every step may be re-opened (``REOPEN_MOVES``).
        """
        statements: list[Statement] = []
        audits: list[AuditEntry] = []
        checks: list[Callable[[], None]] = []
        for step_id, event, data in reopened:
            statement, audit, _ = self._move(run_id, step_id, StepState.PENDING, event, data, None)
            statements.append(statement)
            audits.append(audit)
            checks.append(functools.partial(guards.step_reopen, self.db, run_id, step_id))
        self._write(statements, *audits, guards=tuple(checks))

    def step(self, run_id: str, step_id: str) -> StepRecord:
        """One step of the run."""
        row = self.db.execute(
            "SELECT step_id, state, attempts, action_hash, outputs, error FROM steps"
            " WHERE run_id = ? AND step_id = ?",
            (run_id, step_id),
        ).fetchone()
        return _step_record(run_id, row)

    def begin_attempt(
        self,
        run_id: str,
        step_id: str,
        action_hash: str,
        data: dict[str, Any],
        decision: dict[str, Any] | None = None,
        repeatable: bool = False,
        *,
        token: int,
    ) -> int:
        """Journal that an attempt starts, before it starts; return its number.

        Only the holder of the run's lease ``token`` may start a step (``LeaseLost``
        otherwise), and only a pending one (``StateError``); the token is audited with
        the start. ``decision``, when given, is
        audited in the same transaction. Unless the step is ``repeatable`` (safe to run
        again), the entry is fsynced before this returns.
        """
        (attempts,) = self.db.execute(
            "SELECT attempts FROM steps WHERE run_id = ? AND step_id = ?", (run_id, step_id)
        ).fetchone()
        attempt = int(attempts) + 1
        now = time.time()
        record = {**data, "attempt": attempt, "action_hash": action_hash, "lease": token}
        running = StepState.RUNNING
        self._write(
            [
                (_START_STEP, (running, attempt, action_hash, now, run_id, step_id)),
                (_INSERT_ATTEMPT, (run_id, step_id, attempt, running, now)),
            ],
            *([(run_id, step_id, "decision", decision)] if decision else []),
            (run_id, step_id, "step.started", record),
            fsync=not repeatable,
            guards=(
                lambda: lease.check_token(self.db, run_id, token),
                lambda: guards.step_move(self.db, run_id, step_id, running),
            ),
        )
        return attempt

    def finish_attempt(
        self,
        run_id: str,
        step_id: str,
        attempt: int,
        state: StepState,
        outputs: dict[str, Any],
        error: str | None,
    ) -> None:
        """Journal how an attempt ended and the step's resulting state and outputs.

        ``state`` is where the step moves from running (``StateError`` if it may not).

        Not fsynced by itself: if a power loss takes this record, the step shows as
        running, so resume treats it as unknown (or re-runs it when it is repeatable);
        nothing runs twice that may not. The next fsynced commit persists it (WAL).
        """
        now = time.time()
        outputs, error = self.audit.redact.value(outputs), self.audit.redact.value(error)
        text = json.dumps(outputs, sort_keys=True)
        record = {"attempt": attempt, "outputs": outputs, **({"error": error} if error else {})}
        self._write(
            [
                (_FINISH_ATTEMPT, (state, now, error, run_id, step_id, attempt)),
                (_FINISH_STEP, (state, text, error, now, run_id, step_id)),
            ],
            (run_id, step_id, f"step.{state}", record),
            fsync=False,
            guards=(lambda: guards.step_move(self.db, run_id, step_id, state),),
        )

    # --- approvals ------------------------------------------------------------------------
    def approval(self, run_id: str, step_id: str, action_hash: str) -> ApprovalRecord | None:
        """The approval request for exactly this action of this step, if any."""
        rows = self._approvals(
            "WHERE run_id = ? AND step_id = ? AND action_hash = ?", (run_id, step_id, action_hash)
        )
        return rows[0] if rows else None

    def approvals(
        self, state: ApprovalState | None = None, run_id: str | None = None
    ) -> list[ApprovalRecord]:
        """Approval requests, optionally only those in ``state`` or of one run."""
        clauses, params = [], []
        for column, value in (("state", state), ("run_id", run_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._approvals(where, tuple(params))

    def _approvals(self, where: str, params: tuple[Any, ...]) -> list[ApprovalRecord]:
        rows = self.db.execute(f"{_SELECT_APPROVALS} {where} ORDER BY requested", params).fetchall()
        return [
            ApprovalRecord(
                r[0], r[1], r[2], guards.stored_approval(r[0], r[1], r[3]), json.loads(r[4]), *r[5:]
            )
            for r in rows
        ]

    def request_approval(
        self, run_id: str, step_id: str, action_hash: str, card: dict[str, Any], expires: float
    ) -> None:
        """Record an approval request and halt the step on it (``StateError`` if it may not)."""
        now = time.time()
        text = json.dumps(self.audit.redact.value(card), sort_keys=True)
        record = {"action_hash": action_hash, "expires": expires, "card": card}
        pending, halted = ApprovalState.PENDING, StepState.AWAITING_APPROVAL
        self._write(
            [
                (_INSERT_APPROVAL, (run_id, step_id, action_hash, pending, text, now, expires)),
                (_HALT_STEP, (halted, action_hash, now, run_id, step_id)),
            ],
            (run_id, step_id, "approval.requested", record),
            guards=(lambda: guards.step_move(self.db, run_id, step_id, halted),),
        )

    def supersede_approvals(self, run_id: str, step_id: str, action_hash: str) -> None:
        """Close this step's pending requests for other actions: their arguments changed."""
        where = "WHERE run_id = ? AND step_id = ? AND state = ?"
        for request in self._approvals(where, (run_id, step_id, ApprovalState.PENDING)):
            if request.action_hash != action_hash:
                self.decide_approval(
                    request, ApprovalState.SUPERSEDED, "luminaguard", "arguments changed"
                )

    def audit_event(
        self, run_id: str, step_id: str | None, event: str, data: dict[str, Any]
    ) -> None:
        """Append an audit record that changes no state (a decision, for example)."""
        self._write([], (run_id, step_id, event, data))

    def decide_approval(
        self, request: ApprovalRecord, state: ApprovalState, approver: str, reason: str | None
    ) -> None:
        """Approve, deny, expire or supersede one pending request; record who and why.

        ``StateError`` if the request is decided already (by another process, meanwhile).
        """
        statement, audit, guard = self._decision(request, state, approver, reason)
        self._write([statement], audit, guards=(guard,))

    def approvers_of(self, run_id: str, step_id: str, action_hash: str) -> list[Vote]:
        """Who approved exactly this action so far, by authentic audit records, in order.

        Each approval is an ``approval.vote`` record; an ``approval.approved`` record
        written before votes existed counts as its approver's vote.
        """
        votes: list[Vote] = []
        for record in self.audit.records(run_id, step_id):
            if record.event not in ("approval.vote", "approval.approved"):
                continue
            if record.data.get("action_hash") != action_hash:
                continue
            if not self.audit.authentic(record):
                continue
            role = record.data.get("role")
            vote = (str(record.data.get("approver")), None if role is None else str(role))
            if vote not in votes:
                votes.append(vote)
        return votes

    def vote_approval(
        self,
        request: ApprovalRecord,
        approver: str,
        role: str | None,
        reason: str | None,
        needed: int,
    ) -> list[str]:
        """Record one approval of the pending request; approve it with ``needed`` approvers.

        In one transaction: the ``approval.vote`` record and, when it is the ``needed``-th
        distinct approver's, the move to approved (audited ``approval.approved``, naming
        them all). Returns the distinct approvers so far. ``AlreadyApproved`` when
        ``approver`` approved already (a name counts once); ``StateError`` if the request
        is not pending (decided meanwhile); nothing is written then.
        """
        key = (request.run_id, request.step_id, request.action_hash)
        voters: list[str] = []

        def compose() -> tuple[list[Statement], tuple[AuditEntry, ...]]:
            voters[:] = _names(self.approvers_of(*key))
            if approver in voters:
                raise AlreadyApproved(
                    f"{request.step_id}: {approver!r} approved this action already"
                    f" (a name counts once; {len(voters)} of {needed} approvals)"
                )
            voters.append(approver)
            record = {
                "action_hash": request.action_hash, "approver": approver, "role": role,
                "reason": reason, "count": len(voters), "needed": needed,
            }  # fmt: skip
            vote = (request.run_id, request.step_id, "approval.vote", record)
            if len(voters) < needed:
                return [], (vote,)
            statement, decision, _ = self._decision(
                request, ApprovalState.APPROVED, approver, reason
            )
            decision[3].update(role=role, approvers=list(voters))
            return [statement], (vote, decision)

        may = (lambda: guards.approval_move(self.db, *key, ApprovalState.APPROVED),)
        self._transaction(compose, True, guards=may)
        return voters

    def deny_step(
        self, request: ApprovalRecord, approver: str, reason: str | None, error: str
    ) -> None:
        """Deny the pending request and the step it halted, in one transaction.

        Audited as ``approval.denied`` then ``step.denied``; ``StateError`` (nothing
        written) if either may not move.
        """
        decided, decision, may_decide = self._decision(
            request, ApprovalState.DENIED, approver, reason
        )
        moved, move, may_move = self._move(
            request.run_id,
            request.step_id,
            StepState.DENIED,
            "step.denied",
            {"by": approver},
            error,
        )
        self._write([decided, moved], decision, move, guards=(may_decide, may_move))

    def _decision(
        self, request: ApprovalRecord, state: ApprovalState, approver: str, reason: str | None
    ) -> tuple[Statement, AuditEntry, Callable[[], None]]:
        key = (request.run_id, request.step_id, request.action_hash)
        record = {"action_hash": request.action_hash, "approver": approver, "reason": reason}
        return (
            (_DECIDE_APPROVAL, (state, time.time(), approver, reason, *key)),
            (request.run_id, request.step_id, f"approval.{state}", record),
            lambda: guards.approval_move(self.db, *key, state),
        )


def _names(votes: list[Vote]) -> list[str]:
    names: list[str] = []
    for who, _ in votes:
        if who not in names:
            names.append(who)
    return names


def _step_record(run_id: str, row: tuple[Any, ...]) -> StepRecord:
    state = guards.stored_step(run_id, row[0], row[1])
    return StepRecord(row[0], state, row[2], row[3], json.loads(row[4] or "{}"), row[5])


def text_hash(text: str) -> str:
    """SHA-256 of a stored text (the plan), as audited in ``run.created``."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

"""The runs endpoints: submit, list, get, cancel, audit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from luminaguard.compiler import compile_paths
from luminaguard.compiler.plan import Plan, PlannedStep
from luminaguard.errors import LuminaGuardError
from luminaguard.scheduler.private import check_run_id
from luminaguard.scheduler.store import RunRecord
from luminaguard.server.http import ApiError, Call, Endpoint
from luminaguard.server.models import (
    AuditEntry,
    AuditList,
    FieldProblem,
    RunList,
    RunSummary,
    RunView,
    StepView,
    SubmitRun,
)
from luminaguard.server.tokens import Permission, allows


def summary(run: RunRecord) -> RunSummary:
    """A run without its steps."""
    return RunSummary(
        id=run.id,
        workload=run.workload,
        state=run.state,
        backend=run.backend,
        plan_hash=run.plan.hash,
        created=run.created,
        updated=run.updated,
    )


def known_run(call: Call) -> RunRecord:
    """The run named in the path, or 404."""
    run_id = call.param("run_id")
    if run_id not in call.server.store.run_states():
        raise ApiError(404, f"no run {run_id!r}")
    return call.server.store.run(run_id)


async def list_runs(call: Call) -> BaseModel:
    """Every run, oldest first."""
    return RunList(runs=[summary(run) for run in call.server.store.runs()])


def _risk(step: PlannedStep | None) -> Literal["green", "red", "runtime"]:
    """The step's risk as classified in the plan (runtime: decided before it runs)."""
    if step is None or step.decision is None:
        return "runtime"
    return step.decision.risk


async def get_run(call: Call) -> BaseModel:
    """One run with its steps and their outputs."""
    run = known_run(call)
    planned = {step.id: step for step in run.plan.steps}
    steps = [
        StepView(
            step_id=s.step_id,
            state=s.state,
            needs=list(planned[s.step_id].needs) if s.step_id in planned else [],
            risk=_risk(planned.get(s.step_id)),
            attempts=s.attempts,
            action_hash=s.action_hash,
            outputs=s.outputs,
            error=s.error,
        )
        for s in call.server.store.steps(run.id).values()
    ]
    return RunView(**summary(run).model_dump(), steps=steps)


def _workspace_paths(call: Call, paths: list[str]) -> list[str]:
    """The paths resolved beneath the server's workspace (422 for one outside it)."""
    workspace = call.server.workspace
    if workspace is None:
        raise ApiError(422, "this server has no workspace: submit a compiled plan")
    if len(paths) != 1:
        # a workload's policies and agents come from one place: listed files from several
        # folders let a submitter pair a workload with another team's policy of one name
        problem = FieldProblem(field="paths", message="give one folder or file")
        raise ApiError(422, "submit one folder or file of the workspace", [problem])
    resolved = []
    for index, text in enumerate(paths):
        field = f"paths.{index}"
        try:  # a NUL byte, a name too long, a loop of links: the caller's problem
            path = (workspace / text).resolve()
            found = path.exists()
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problem = FieldProblem(field=field, message=why)
            raise ApiError(422, f"a path cannot be read: {why}", [problem]) from None
        if Path(text).is_absolute() or not path.is_relative_to(workspace):
            problem = FieldProblem(field=field, message="not inside the workspace")
            raise ApiError(422, "a path is outside the server's workspace", [problem])
        if not found:
            problem = FieldProblem(field=field, message="no such file or folder")
            raise ApiError(422, "no such file or folder in the workspace", [problem])
        _links_stay_inside(path, workspace, field)
        resolved.append(str(path))
    return resolved


def _links_stay_inside(folder: Path, workspace: Path, field: str) -> None:
    """Refuse a folder holding a link to anything outside the workspace (it would be read)."""
    if not folder.is_dir():
        return
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            entry = Path(parent, name)
            if entry.is_symlink() and not entry.resolve().is_relative_to(workspace):
                shown = entry.relative_to(workspace)
                problem = FieldProblem(field=field, message=f"{shown} links outside")
                raise ApiError(422, "a link in the folder leads outside the workspace", [problem])


def _plan(call: Call, body: SubmitRun) -> Plan:
    if (body.plan is None) == (body.paths is None):
        problem = FieldProblem(field="plan", message="give either plan or paths")
        raise ApiError(422, "give either a compiled plan or paths", [problem])
    if body.plan is not None:
        if call.who is None or not allows(call.who.role, Permission.ADMIN):
            # a compiled plan carries the policies that classify its steps and the host
            # folders its agents mount: submitting one is writing policy
            raise ApiError(
                403,
                "only an admin token may submit a compiled plan (it carries its own"
                " policies); submit paths in the server's workspace instead",
            )
        try:
            plan = Plan.model_validate(body.plan)
        except ValidationError as exc:
            raise ApiError(422, f"the plan is not valid: {exc.error_count()} problem(s)") from None
        if plan.hash != plan.compute_hash():
            raise ApiError(422, "the plan's hash does not match its content")
        return plan
    paths = _workspace_paths(call, body.paths or [])
    hidden = str(call.server.workspace) + "/"  # the server's folders are not shown
    try:
        _, plans = compile_paths(paths, body.workload, dict(body.params))
    except LuminaGuardError as exc:  # the YAML's problems; no such workload or param
        raise ApiError(422, str(exc).replace(hidden, "")) from None
    except (OSError, UnicodeError) as exc:  # a file that cannot be read, or not as text
        why = str(exc).replace(hidden, "")
        raise ApiError(422, f"a workload file cannot be read: {why}") from None
    if len(plans) != 1:
        names = ", ".join(plan.workload for plan in plans) or "none"
        raise ApiError(422, f"a run takes one workload; choose with workload ({names})")
    return plans[0]


async def submit(call: Call) -> BaseModel:
    """Compile (or take) the plan, record the run, start driving it."""
    assert isinstance(call.body, SubmitRun)
    if call.server.engine.stopping:
        raise ApiError(503, "the server is stopping: no new runs")
    plan = _plan(call, call.body)
    run_id = call.body.run_id or call.server.new_run_id(plan.workload)
    try:
        check_run_id(run_id)
    except LuminaGuardError as exc:
        raise ApiError(422, str(exc), [FieldProblem(field="run_id", message=str(exc))]) from None
    if run_id in call.server.store.run_states():
        raise ApiError(409, f"run {run_id!r} exists already")
    backend = call.body.backend or call.server.backend
    started_by = {"name": call.name, "via": "api"}
    try:
        call.server.engine.submit(plan, run_id, backend, started_by)
    except LuminaGuardError as exc:
        if run_id in call.server.store.run_states():  # created meanwhile by another process
            raise ApiError(409, f"run {run_id!r} exists already") from None
        raise ApiError(422, str(exc)) from None
    return summary(call.server.store.run(run_id))


async def cancel(call: Call) -> BaseModel:
    """Stop the run; it ends failed, its running steps killed."""
    run = known_run(call)
    if run.state in ("succeeded", "failed"):
        raise ApiError(409, f"run {run.id} has ended ({run.state})")
    try:
        await call.server.engine.cancel(run.id, call.name)
    except LuminaGuardError as exc:
        raise ApiError(409, str(exc)) from None
    return summary(call.server.store.run(run.id))


async def audit(call: Call) -> BaseModel:
    """The run's audit records, in order."""
    run = known_run(call)
    records = [
        AuditEntry(seq=r.seq, time=r.time, step_id=r.step_id, event=r.event, data=r.data)
        for r in call.server.store.audit.records(run.id)
    ]
    return AuditList(records=records)


ENDPOINTS = (
    Endpoint("GET", "/v1/runs", list_runs, Permission.READ, "list runs", response=RunList),
    Endpoint(
        "POST",
        "/v1/runs",
        submit,
        Permission.SUBMIT,
        "submit a run",
        body=SubmitRun,
        response=RunSummary,
        status=201,
        errors=(409, 422),
    ),
    Endpoint(
        "GET",
        "/v1/runs/{run_id}",
        get_run,
        Permission.READ,
        "get a run",
        response=RunView,
        errors=(404,),
    ),
    Endpoint(
        "POST",
        "/v1/runs/{run_id}/cancel",
        cancel,
        Permission.CANCEL,
        "cancel a run",
        response=RunSummary,
        errors=(404, 409),
    ),
    Endpoint(
        "GET",
        "/v1/runs/{run_id}/audit",
        audit,
        Permission.READ,
        "audit records of a run",
        response=AuditList,
        errors=(404,),
    ),
)

"""The JSON bodies of the HTTP API: what requests carry and responses return.

Pydantic models, so that a request is parsed (never pattern-matched) and the OpenAPI
document is generated from the same classes the handlers use. Request models forbid
unknown fields and bound every string and list.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Name = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
Reason = Field(default=None, max_length=2000)
Hash = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9:]+$")


class Request(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class SubmitRun(Request):
    """A run to start: a compiled plan, or paths in the server's workspace to compile."""

    plan: dict[str, Any] | None = Field(default=None, description="a compiled plan (JSON)")
    paths: list[str] | None = Field(
        default=None,
        max_length=256,
        description="YAML files or folders, relative to the server's workspace",
    )
    workload: str | None = Field(default=None, max_length=128)
    params: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=256)
    run_id: str | None = Field(default=None, min_length=1, max_length=128)
    backend: str | None = Field(default=None, max_length=64)


class Decide(Request):
    """Approve or deny one request, bound to the exact action the approver saw."""

    action_hash: str = Hash
    reason: str | None = Reason


class BatchItem(Request):
    """One decision of a batch."""

    run_id: str = Name
    step_id: str = Name
    action_hash: str = Hash
    verdict: Literal["approve", "deny"]
    reason: str | None = Reason


class DecideMany(Request):
    """Several decisions at once, each bound to its own action hash."""

    decisions: list[BatchItem] = Field(min_length=1, max_length=100)


class StepView(BaseModel):
    """A step of a run as it stands."""

    step_id: str
    state: str
    attempts: int
    action_hash: str | None
    outputs: dict[str, Any]
    error: str | None


class RunSummary(BaseModel):
    """A run, without its steps."""

    id: str
    workload: str
    state: str
    backend: str
    plan_hash: str
    created: float
    updated: float


class RunView(RunSummary):
    """A run with its steps in plan order."""

    steps: list[StepView]


class RunList(BaseModel):
    """Runs, oldest first."""

    runs: list[RunSummary]


class ApprovalView(BaseModel):
    """An approval request with its card (as audited)."""

    run_id: str
    step_id: str
    action_hash: str
    state: str
    card: dict[str, Any]
    requested: float
    expires: float
    decided: float | None
    approver: str | None
    reason: str | None


class ApprovalList(BaseModel):
    """Pending approval requests, oldest first."""

    approvals: list[ApprovalView]


class Decided(BaseModel):
    """What a decision recorded."""

    run_id: str
    step_id: str
    action_hash: str
    verdict: str
    by: str


class BatchResult(BaseModel):
    """One decision of a batch: its status code and what was recorded, or why not."""

    status: int
    decided: Decided | None = None
    error: str | None = None


class BatchResults(BaseModel):
    """The outcome of each decision of a batch, in order."""

    results: list[BatchResult]


class AuditEntry(BaseModel):
    """One audit record."""

    seq: int
    time: float
    step_id: str | None
    event: str
    data: dict[str, Any]


class AuditList(BaseModel):
    """A run's audit records, in order."""

    records: list[AuditEntry]


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    detail: str = ""


class FieldProblem(BaseModel):
    """One problem with one field of a request."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error response."""

    error: str
    fields: list[FieldProblem] = Field(default_factory=list)

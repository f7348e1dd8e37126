"""The JSON bodies of the HTTP API: what requests carry and responses return.

Pydantic models, so that a request is parsed (never pattern-matched) and the OpenAPI
document is generated from the same classes the handlers use. Request models forbid
unknown fields and bound every string and list. Response models are documented as they
are serialised: every field is always present (``null`` where it has no value), so the
document marks each one required.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from luminaguard.scheduler.states import ApprovalState, RunState, StepState

Name = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
Reason = Field(default=None, max_length=2000)
Hash = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9:]+$")
#: What ``check_run_id`` accepts (besides refusing ``..``): a run id names a folder.
RUN_ID = r"^[A-Za-z0-9._-]{1,128}$"
PathText = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00]+$")]
Seconds = Field(description="seconds since the epoch")


class Request(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Reply(BaseModel):
    """A response body: documented as serialised (fields with a default are required)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class SubmitRun(Request):
    """A run to start: a compiled plan, or paths in the server's workspace to compile."""

    plan: dict[str, Any] | None = Field(default=None, description="a compiled plan (JSON)")
    paths: list[PathText] | None = Field(
        default=None,
        max_length=256,
        description="YAML files or folders, relative to the server's workspace",
    )
    workload: str | None = Field(default=None, max_length=128)
    params: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=256)
    run_id: str | None = Field(
        default=None, pattern=RUN_ID, description="the new run's id (default: generated)"
    )
    backend: str | None = Field(
        default=None, max_length=64, description="the backend (default: the server's)"
    )


class Decide(Request):
    """Approve or deny one request, bound to the exact action the approver saw."""

    action_hash: str = Hash
    reason: str | None = Reason


class Retry(Request):
    """Re-open a failed step (and the steps skipped because of it), and why."""

    reason: str | None = Reason


class RetryMany(Request):
    """Re-open several failed steps of one run at once (none named: every failed step)."""

    steps: list[Annotated[str, Name]] | None = Field(
        default=None, max_length=1024, description="the failed steps (default: every one)"
    )
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


class StepView(Reply):
    """A step of a run as it stands."""

    step_id: str
    state: StepState
    needs: list[str] = Field(description="the steps this one waits for (the plan's DAG)")
    risk: Literal["green", "red", "runtime"] = Field(
        description="as classified in the plan: runtime when decided before it runs"
    )
    attempts: int
    action_hash: str | None
    outputs: dict[str, Any]
    error: str | None


class RunSummary(Reply):
    """A run, without its steps."""

    id: str
    workload: str
    state: RunState
    backend: str
    plan_hash: str
    created: float = Seconds
    updated: float = Seconds


class RunView(RunSummary):
    """A run with its steps in plan order."""

    steps: list[StepView]


class RunList(Reply):
    """Runs, oldest first."""

    runs: list[RunSummary]


class ApprovalView(Reply):
    """An approval request with its card (as audited)."""

    run_id: str
    step_id: str
    action_hash: str
    state: ApprovalState
    card: dict[str, Any]
    min_approvals: int = Field(default=1, description="distinct approvers needed")
    approved_by: list[str] = Field(
        default_factory=list, description="the distinct names that approved so far"
    )
    requested: float = Seconds
    expires: float = Seconds
    decided: float | None = Seconds
    approver: str | None
    reason: str | None


class ApprovalList(Reply):
    """Pending approval requests, oldest first."""

    approvals: list[ApprovalView]


class Retried(Reply):
    """What a retry re-opened; the server then drives the run again."""

    run_id: str
    by: str
    retried: list[str] = Field(description="the failed steps re-opened")
    reopened: list[str] = Field(description="the steps skipped because of them, re-opened")


class Decided(Reply):
    """What a decision recorded."""

    run_id: str
    step_id: str
    action_hash: str
    verdict: str = Field(
        description="approved, denied, or counted (an approval short of min_approvals)"
    )
    by: str
    approved_by: list[str] = Field(
        default_factory=list, description="the distinct names that approved so far"
    )
    needed: int = Field(default=0, description="approvals still needed before it is approved")


class BatchResult(Reply):
    """One decision of a batch: its status code and what was recorded, or why not."""

    status: int
    decided: Decided | None = None
    error: str | None = None


class BatchResults(Reply):
    """The outcome of each decision of a batch, in order."""

    results: list[BatchResult]


class AuditEntry(Reply):
    """One audit record."""

    seq: int
    time: float = Seconds
    step_id: str | None
    event: str
    data: dict[str, Any]


class AuditList(Reply):
    """A run's audit records, in order."""

    records: list[AuditEntry]


class Health(Reply):
    """Liveness or readiness."""

    status: Literal["ok", "ready", "not ready"]
    detail: str = ""


class FieldProblem(Reply):
    """One problem with one field of a request."""

    field: str
    message: str


class ErrorBody(Reply):
    """Every error response."""

    error: str
    fields: list[FieldProblem] = Field(default_factory=list)


# --- questions from tools (MCP elicitation) ---------------------------------------------
AnswerValue = str | int | float | bool | list[Annotated[str, Field(max_length=10_000)]] | None


class FieldView(Reply):
    """One field of a question's form."""

    name: str
    kind: Literal["string", "number", "integer", "boolean", "choice", "choices"]
    title: str
    description: str
    required: bool
    choices: list[str]
    minimum: float | None = Field(description="of a number, or of a text's or list's length")
    maximum: float | None
    default: AnswerValue


class QuestionView(Reply):
    """A question an MCP server asks a person while one of its tools runs."""

    run_id: str
    question_id: str
    step_id: str | None = Field(description="the step whose call asks (null: several)")
    server: str = Field(description="agent/server")
    state: Literal["pending", "answered", "declined", "expired", "cancelled"]
    message: str = Field(description="the server's text: show it as text, never as HTML")
    fields: list[FieldView]
    asked: float = Seconds
    expires: float = Seconds
    decided: float | None
    who: str | None


class QuestionList(Reply):
    """Questions nobody has answered yet, oldest first."""

    questions: list[QuestionView]


class Answer(Request):
    """A person's answer: a value for each field (checked against the form)."""

    content: dict[Annotated[str, Field(max_length=64)], AnswerValue] = Field(max_length=32)


class DeclineQuestion(Request):
    """Decline to answer a question."""

    reason: str | None = Reason


class Answered(Reply):
    """What was recorded, and so what the server is told."""

    run_id: str
    question_id: str
    state: Literal["answered", "declined"]
    by: str
    content: dict[str, AnswerValue] | None


# --- GitOps ------------------------------------------------------------------------------
Condition = Literal["Ready", "Reconciling", "Stalled", "Drifted"]


class GitopsObject(Reply):
    """One object the reconciler applied, and how it stands now."""

    kind: str
    name: str
    condition: Condition
    reason: str
    revision: str = Field(description="the source revision it was applied from")
    path: str = Field(description="its file in the source")
    applied: float = Seconds


class GitopsSource(Reply):
    """The source the server follows."""

    url: str
    revision: str | None = Field(description="the revision applied (the last good one)")
    attempted: str | None = Field(description="the revision last tried")
    condition: Condition
    reason: str = Field(description="why it is Stalled: each problem as FILE:LINE:COL: ...")
    updated: float = Seconds


class GitopsStatus(Reply):
    """What the reconciler applied, and what differs from it now."""

    source: GitopsSource | None
    policies_revision: str = Field(description="the revision of the policies in force")
    objects: list[GitopsObject]

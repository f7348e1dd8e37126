"""The Workload kind: parameters and a DAG of steps, each a shell command or an MCP call."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from croniter import croniter
from pydantic import AfterValidator, Field, JsonValue, model_validator

from luminaguard.config.models.common import Duration, Identifier, Model, Name

CallTarget = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_./-]{1,128}$",
        description="SERVER.TOOL: a tool of one of the agent's MCP servers",
    ),
]


class Step(Model):
    """One step: ``run`` a command in the agent's sandbox, or ``call`` an MCP tool."""

    id: Identifier
    agent: Name
    run: str | None = None
    call: CallTarget | None = None
    args: dict[str, JsonValue] = Field(default_factory=dict)
    needs: list[Identifier] = Field(default_factory=list)
    when: str | None = Field(default=None, description="expression over params and steps")
    retries: int = Field(default=0, ge=0, le=10)
    timeout: Duration | None = None
    idempotent: bool = False
    description: str | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Self:
        if (self.run is None) == (self.call is None):
            raise ValueError(
                "a step needs exactly one of 'run' (a command) or 'call' (SERVER.TOOL)"
            )
        if self.run is not None and self.args:
            raise ValueError("'args' belong to a 'call' step; put arguments in the command")
        if self.retries and not self.idempotent:
            raise ValueError("'retries' needs 'idempotent: true': a retry may repeat the effect")
        return self

    @property
    def server(self) -> str | None:
        """The MCP server of a call step."""
        return self.call.split(".", 1)[0] if self.call else None

    @property
    def tool(self) -> str | None:
        """The MCP tool of a call step."""
        return self.call.split(".", 1)[1] if self.call else None


def _cron(expression: str) -> str:
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a cron schedule (five fields: m h dom mon dow)")
    return expression


Cron = Annotated[str, Field(max_length=200), AfterValidator(_cron)]


class Trigger(Model):
    """When the reconciler starts the workload by itself."""

    on: Literal["change"] = Field(
        description="change: once each time the workload's compiled plan (its documents,"
        " their inputs, the policies in force) changes in the source"
    )


class WorkloadSpec(Model):
    """Parameters with their defaults and the steps, which form a DAG through ``needs``."""

    params: dict[Identifier, JsonValue] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    trigger: Trigger | None = Field(
        default=None, description="run by the reconciler (serve --source, reconcile)"
    )
    schedule: Cron | None = Field(
        default=None,
        description="cron schedule (UTC) on which the reconciler's server starts the workload",
    )

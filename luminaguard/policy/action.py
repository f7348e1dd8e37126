"""What the policy engine classifies: one action, a shell command or an MCP tool call."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from luminaguard.config.models.common import Risk
from luminaguard.config.models.policy_test import ActionSpec

#: MCP's defaults for a hint the server did not give: assume the worst.
ANNOTATION_DEFAULTS: dict[str, bool] = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": False,
    "openWorldHint": True,
}


class Action(BaseModel):
    """A ``run`` (command) or ``call`` (server, tool, args) with the tool's annotations if known."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["call", "run"]
    server: str | None = None
    tool: str | None = None
    command: str | None = None
    args: dict[str, JsonValue] = Field(default_factory=dict)
    annotations: dict[str, bool] | None = None

    def effective_annotations(self) -> dict[str, bool]:
        """The annotations with MCP's pessimistic defaults for every hint not given."""
        return {**ANNOTATION_DEFAULTS, **(self.annotations or {})}

    def content_hash(self) -> str:
        """SHA-256 over the action's exact content; approvals are bound to it."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def describe(self) -> str:
        """One short line: ``server.tool`` or ``$ command``."""
        if self.kind == "run":
            return f"$ {self.command}"
        return f"{self.server}.{self.tool}"


def written(spec: ActionSpec) -> Action:
    """The Action of a hand-written one (a policy test, ``policy explain``)."""
    if spec.run is not None:
        return Action(kind="run", command=spec.run)
    server, tool = (spec.call or "").split(".", 1)
    hints = spec.annotations.model_dump(exclude_none=True) if spec.annotations else None
    return Action(kind="call", server=server, tool=tool, args=spec.args, annotations=hints)


class Decision(BaseModel):
    """The engine's answer: risk, the rule that decided (or the default) and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    risk: Risk
    policy: str
    rule: str | None = Field(description="id of the deciding rule; None when the default applied")
    reason: str
    source: str | None = Field(default=None, description="FILE:LINE of the deciding rule")

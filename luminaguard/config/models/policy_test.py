"""The PolicyTest kind: actions with the risk (and rule) a policy must give them.

A test file sits next to its policy (``policies/NAME.test.yaml``)::

    kind: PolicyTest
    spec:
      policy: starter
      tests:
        - name: reading a file runs by itself
          call: filesystem.read_text_file
          args: {path: /work/notes.md}
          expect: {risk: green, rule: fs-read}
        - {name: rm is red, run: "rm -rf /work", expect: red}

``expect`` is a risk, or a risk and the id of the rule that must decide;
``rule: (default)`` means that no rule may match.
"""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import Field, JsonValue, model_validator

from luminaguard.config.models.common import Model, Risk
from luminaguard.config.models.policy import AnnotationsMatch

DEFAULT_RULE = "(default)"
#: The "rule" of a shell command that cannot be decided before it runs.
UNDECIDABLE_RULE = "(undecidable)"
_CALL = re.compile(r"^[A-Za-z0-9_.-]+\.[A-Za-z0-9_/-]+$")


class ActionSpec(Model):
    """An action written by hand: ``call: SERVER.TOOL`` with ``args``, or ``run: COMMAND``."""

    call: str | None = Field(default=None, description="SERVER.TOOL of an MCP tool call")
    run: str | None = Field(default=None, description="a shell command")
    args: dict[str, JsonValue] = Field(default_factory=dict, description="the call's arguments")
    annotations: AnnotationsMatch | None = Field(
        default=None, description="the tool's MCP annotations (missing hints: MCP defaults)"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.call is None) == (self.run is None):
            raise ValueError("write exactly one of 'call' (SERVER.TOOL) or 'run' (a command)")
        if self.call is not None and not _CALL.match(self.call):
            raise ValueError(f"call {self.call!r} is not SERVER.TOOL")
        if self.run is not None and (self.args or self.annotations):
            raise ValueError("'args' and 'annotations' belong to a 'call', not a 'run'")
        return self


class Expectation(Model):
    """The risk a test expects and, optionally, the rule that must decide it."""

    risk: Risk
    rule: str | None = Field(
        default=None, description=f"id of the deciding rule, or {DEFAULT_RULE!r}"
    )

    @model_validator(mode="before")
    @classmethod
    def _plain_risk(cls, data: Any) -> Any:
        return {"risk": data} if isinstance(data, str) else data

    def describe(self) -> str:
        """``red by fs-write``, ``green by the default`` or just ``red``."""
        if self.rule is None:
            return self.risk
        return f"{self.risk} by " + ("the default" if self.rule == DEFAULT_RULE else self.rule)


class PolicyTestCase(ActionSpec):
    """One test: a named action and what the policy must decide for it."""

    name: str = Field(min_length=1)
    expect: Expectation


class PolicyTestSpec(Model):
    """Tests of one policy."""

    policy: str = Field(description="name of the Policy under test")
    tests: list[PolicyTestCase] = Field(min_length=1)

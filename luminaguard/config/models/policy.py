"""The Policy kind: ordered rules that classify an action Green or Red; first match decides."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from luminaguard.config.models.common import Duration, Model, Risk

RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Patterns = str | list[str]


def pattern_list(patterns: str | Sequence[str] | None) -> tuple[str, ...]:
    """A rule's patterns as written, as a tuple: a string is one pattern, None is none.

    The one normalisation of ``Patterns`` (matching, indexing, fusing, lint and explain
    all read them through it); the model keeps the shape the user wrote, which its
    dumps and so the plan hash depend on.
    """
    if patterns is None:
        return ()
    return (patterns,) if isinstance(patterns, str) else tuple(patterns)


_MATCHER_KEYS = ("equals", "glob", "path", "regex")


class ValueMatch(Model):
    """A test on one value; a plain value is shorthand for ``equals``.

    ``glob`` is fnmatch, ``path`` a normalised path glob, ``regex`` is searched.
    """

    equals: JsonValue = None
    glob: Patterns | None = None
    path: Patterns | None = None
    regex: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_value_means_equals(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) & set(_MATCHER_KEYS):
            return data
        return {"equals": data}

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [key for key in _MATCHER_KEYS if key in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"write exactly one of {', '.join(_MATCHER_KEYS)}; got {given}")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.regex!r}: {exc}") from exc
        return self

    @model_serializer(mode="plain")
    def _only_the_operator(self) -> dict[str, Any]:
        return {self.operator: getattr(self, self.operator)}

    @property
    def operator(self) -> str:
        """Which test this is: equals, glob, path or regex."""
        return next(key for key in _MATCHER_KEYS if key in self.model_fields_set)


class AnnotationsMatch(Model):
    """MCP tool annotations a rule requires; a missing hint takes the MCP default."""

    readOnlyHint: bool | None = None
    destructiveHint: bool | None = None
    idempotentHint: bool | None = None
    openWorldHint: bool | None = None


#: Keys of ``args`` in a rule on shell commands: which of the arguments must pass the test.
ARGV_KEYS = ("any", "all", "none")


class Match(Model):
    """What a rule matches; every condition given must hold. Empty matches every action.

    On ``run`` commands a rule sees each simple command of the parsed command line:
    ``program`` (glob on its name), ``args`` (``any``/``all``/``none`` of the arguments,
    or the argument at a position ``"0"``, ``"1"``...), ``redirects`` (the targets of
    writing redirections) and ``command`` (the simple command's own text).
    """

    kind: Literal["call", "run"] | None = None
    server: Patterns | None = Field(default=None, description="glob on the MCP server name")
    tool: Patterns | None = Field(default=None, description="glob on the MCP tool name")
    program: Patterns | None = Field(
        default=None, description="glob on a shell command's program (name, or path with /)"
    )
    command: ValueMatch | None = Field(
        default=None, description="test on each simple command's own text"
    )
    args: dict[str, ValueMatch] = Field(default_factory=dict)
    redirects: ValueMatch | None = Field(
        default=None, description="test every writing redirection's target must pass"
    )
    annotations: AnnotationsMatch | None = None

    @model_validator(mode="after")
    def _shell_or_tool(self) -> Self:
        shell = self.program is not None or self.redirects is not None or self.kind == "run"
        if shell and (self.kind == "call" or self.server or self.tool or self.annotations):
            raise ValueError(
                "program, redirects and kind: run describe shell commands; "
                "server, tool, annotations and kind: call describe tool calls"
            )
        if shell:
            for key in self.args:
                if key not in ARGV_KEYS and not key.isdigit():
                    raise ValueError(
                        f"args of a shell command are any, all, none or a position "
                        f"such as '0'; got {key!r}"
                    )
        return self


class _SelfApproval(Model):
    """``prevent_self_approval``, left out of dumps (and plan hashes) while it is false.

    So is ``min_approvals`` while it has its default (the value in ``_UNSAID``): plans
    compiled before these settings existed keep their hashes.
    """

    _UNSAID: ClassVar[dict[str, Any]] = {"prevent_self_approval": False}

    prevent_self_approval: bool = Field(
        default=False, description="the person who started a run may not approve its steps"
    )

    @model_serializer(mode="wrap")
    def _omit_when_false(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key, unsaid in self._UNSAID.items():
            if key in data and data[key] == unsaid:
                del data[key]
        return data


class Rule(_SelfApproval):
    """One rule: when ``match`` holds, the action gets ``risk`` for ``reason``."""

    _UNSAID: ClassVar[dict[str, Any]] = {"prevent_self_approval": False, "min_approvals": None}

    id: RuleId
    match: Match
    risk: Risk
    reason: str = Field(min_length=1, description="one line a person understands")
    description: str | None = None
    approvers: list[str] = Field(
        default_factory=list,
        description="who may approve or deny this rule's actions (empty: the policy's approvers)",
    )
    timeout: Duration | None = Field(default=None, description="approval timeout of this rule")
    min_approvals: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="distinct approvers needed for this rule's actions (empty: the policy's)",
    )


def webhook_url(url: str) -> str:
    """``url`` if it is an absolute http or https URL to post to; ValueError otherwise.

    No user name or password in it (they would travel in clear text in logs); no
    whitespace or control characters; a host is required.
    """
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError("the URL holds no whitespace or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - refuses a port that is not a number
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the URL is not http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL holds no user name or password")
    return url


class Webhook(Model):
    """Where a new approval request is announced: a URL posted to, and the body's format.

    ``slack``: a Slack incoming-webhook message (``{"text": ...}``); ``generic``: the
    request as JSON. Neither holds the action's arguments. No headers: a URL that must
    stay private (a Slack webhook's path is its secret) is only ever recorded by host.
    """

    url: Annotated[str, AfterValidator(webhook_url)] = Field(
        description="http:// or https:// URL the message is posted to"
    )
    format: Literal["slack", "generic"] = Field(
        description="slack: Slack incoming-webhook JSON; generic: the request as JSON"
    )


class Approval(_SelfApproval):
    """How Red steps are approved by default under this policy."""

    _UNSAID: ClassVar[dict[str, Any]] = {"prevent_self_approval": False, "min_approvals": 1}

    timeout: Duration = 3600.0
    approvers: list[str] = Field(
        default_factory=list,
        description="who may approve or deny (empty: anyone); role:NAME is any token of that role",
    )
    min_approvals: int = Field(
        default=1, ge=1, le=16, description="distinct approvers needed to approve an action"
    )
    notify: list[Webhook] = Field(
        default_factory=list,
        description="webhooks posted to when a request is created",
        exclude_if=lambda hooks: not hooks,  # absent from dumps and plan hashes while empty
    )


class PolicySpec(Model):
    """Ordered rules; the first that matches decides; otherwise ``default`` (red)."""

    default: Risk = "red"
    default_reason: str = "no rule matched; red by default"
    approval: Approval = Field(default_factory=Approval)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _enough_approvers(self) -> Self:
        """Refuse a ``min_approvals`` that the approvers named (by name only) cannot reach."""
        terms = [("approval", self.approval.approvers, self.approval.min_approvals)]
        for rule in self.rules:
            if rule.approvers or rule.min_approvals is not None:
                approvers = rule.approvers or self.approval.approvers
                needed = rule.min_approvals or self.approval.min_approvals
                terms.append((f"rule {rule.id}", approvers, needed))
        for where, approvers, needed in terms:
            named = set(approvers)
            if named and not any(a.startswith("role:") for a in named) and len(named) < needed:
                raise ValueError(
                    f"{where}: min_approvals is {needed} but only {len(named)}"
                    " distinct approvers are named"
                )
        return self

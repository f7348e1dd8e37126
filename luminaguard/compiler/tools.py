"""Checking call steps against the lock: the tool exists, its arguments fit its schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from jsonschema import exceptions as schema_errors
from jsonschema import validators

from luminaguard.compiler.lock import LockedTool, ToolLock
from luminaguard.config.diagnostics import Diagnostic
from luminaguard.config.models import Step
from luminaguard.config.validate import Document, did_you_mean


def locked_tool(lock: ToolLock | None, step: Step) -> LockedTool | None:
    """The lock entry of a call step's tool, when its server is locked and has it."""
    if lock is None or step.call is None:
        return None
    server = lock.server(step.agent, step.server or "")
    return server.tools.get(step.tool or "") if server else None


class _Validator(Protocol):
    def iter_errors(self, instance: Any) -> Iterator[schema_errors.ValidationError]: ...


class SchemaValidators:
    """Each locked tool's input schema checked and compiled once, not once per step.

    Keyed by agent, server and tool (a lock entry); None for a broken schema.
    """

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str, str], _Validator | None] = {}

    def get(self, key: tuple[str, str, str], schema: dict[str, Any]) -> _Validator | None:
        """The validator of the schema locked under ``key``, compiled on first use."""
        if key not in self._compiled:
            validator_class = validators.validator_for(schema)
            try:
                validator_class.check_schema(schema)
                self._compiled[key] = validator_class(schema)
            except schema_errors.SchemaError:
                self._compiled[key] = None
        return self._compiled[key]


def _argument_errors(
    validator: _Validator | None, args: dict[str, Any]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if validator is None:
        return  # the server's schema is broken; the server will judge the arguments itself
    for error in validator.iter_errors(args):
        yield tuple(error.absolute_path), error.message


def check_call(
    document: Document,
    index: int,
    step: Step,
    lock: ToolLock | None,
    args: dict[str, Any],
    runtime: bool,
    schemas: SchemaValidators | None = None,
) -> list[Diagnostic]:
    """Problems of one call step against the lock (none when its server is not locked).

    ``schemas`` keeps each tool's compiled schema for the next step that calls it.
    """
    if lock is None or step.call is None:
        return []
    server = lock.server(step.agent, step.server or "")
    if server is None:
        return []
    where = document.source.locations
    base = ("spec", "steps", index)
    tool = server.tools.get(step.tool or "")
    if tool is None:
        names = sorted(server.tools)
        hint = did_you_mean(step.tool or "", names) or f" (tools: {', '.join(names) or 'none'})"
        owner = f"server {step.server!r} of agent {step.agent!r}"
        message = f"{owner} has no tool {step.tool!r} in the lock{hint}"
        return [Diagnostic(where.value((*base, "call")), message)]
    if runtime:
        return []  # arguments known at run time: the server checks them then
    key = (step.agent, step.server or "", step.tool or "")
    validator = (schemas or SchemaValidators()).get(key, tool.input_schema)
    return [
        Diagnostic(
            where.value((*base, "args", *path)), f"args{''.join(f'.{p}' for p in path)}: {message}"
        )
        for path, message in _argument_errors(validator, args)
    ]

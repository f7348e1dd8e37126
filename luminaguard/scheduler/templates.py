"""A step's run-time values: the template context, its rendered action, its ``when``."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import JsonValue

from luminaguard.compiler.plan import Plan, PlannedStep
from luminaguard.config.render import (
    Namespace,
    evaluate_expression,
    render_command_text,
    render_text,
)
from luminaguard.errors import LuminaGuardError
from luminaguard.policy.action import Action
from luminaguard.scheduler.states import StepState
from luminaguard.scheduler.store import StepRecord


class StepError(LuminaGuardError):
    """A step cannot run (a missing secret, a template that fails at run time)."""


class StepOutputs(Mapping[str, Namespace]):
    """``steps`` in a template: the steps that succeeded, each looked up when used.

    A read-only view of the run's step states, not a copy: a step pays for the steps
    its templates name, not for the size of the run. Each step's outputs are copied
    when first used (deeply: a template calling a method of a list or dict it was given
    changes its own copy, never the run's state), once per view.

    Only the steps in ``visible`` (the step's needs, direct or not) are seen, when given:
    a key computed at run time (``steps[k]`` over ``steps``) escapes the compiler's check
    of the names, and must not read a step that merely happened to succeed already.
    """

    label = "steps"

    def __init__(
        self, records: Mapping[str, StepRecord], visible: frozenset[str] | None = None
    ) -> None:
        self._records = records
        self._visible = visible
        self._used: dict[str, Namespace] = {}

    def _seen(self, step_id: str) -> bool:
        return self._visible is None or step_id in self._visible

    def __getitem__(self, step_id: str) -> Namespace:
        if step_id in self._used:
            return self._used[step_id]
        record = self._records.get(step_id) if self._seen(step_id) else None
        if record is None or record.state != StepState.SUCCEEDED:
            raise KeyError(step_id)
        outputs = Namespace(f"steps.{step_id}.outputs", copy.deepcopy(record.outputs))
        found = self._used[step_id] = Namespace(f"steps.{step_id}", {"outputs": outputs})
        return found

    def __iter__(self) -> Iterator[str]:
        records = self._records
        return (
            key
            for key, record in records.items()
            if record.state == StepState.SUCCEEDED and self._seen(key)
        )

    def __len__(self) -> int:
        return sum(1 for _ in self)


def needed_steps(needs: Mapping[str, Sequence[str]], step_id: str) -> frozenset[str]:
    """The steps ``step_id`` needs, directly or through others (``needs``: each step's own)."""
    found: set[str] = set()
    todo = list(needs.get(step_id, ()))
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(needs.get(name, ()))
    return frozenset(found)


def template_context(
    plan: Plan, steps: Mapping[str, StepRecord], visible: frozenset[str] | None = None
) -> dict[str, Any]:
    """``params`` and the outputs of the steps that succeeded so far (a view, not a copy).

    The runner passes its live states: a template may only use the outputs of steps its
    step needs (the compiler checks the names; the view, given ``visible``, the step's
    needs, holds only those steps), which all succeeded, for good, before it started.
    """
    return {"params": Namespace("params", plan.params), "steps": StepOutputs(steps, visible)}


def _render(value: JsonValue, context: Mapping[str, Any]) -> JsonValue:
    if isinstance(value, str):
        return render_text(value, context)  # type: ignore[no-any-return]
    if isinstance(value, list):
        return [_render(item, context) for item in value]
    if isinstance(value, dict):
        return {key: _render(item, context) for key, item in value.items()}
    return value


def actual_action(step: PlannedStep, context: Mapping[str, Any]) -> Action:
    """The step's action with run-time values filled in (unchanged if it had none)."""
    if not step.runtime:
        return step.action
    try:
        if step.action.kind == "run":
            return step.action.model_copy(
                update={"command": render_command_text(step.action.command or "", context)}
            )
        return step.action.model_copy(update={"args": _render(step.action.args, context)})
    except Exception as exc:  # a template failing at run time fails the step, not the run
        raise StepError(f"cannot render arguments: {exc}") from exc


def should_run(step: PlannedStep, context: Mapping[str, Any]) -> bool:
    """The value of the step's ``when`` expression (True without one)."""
    if step.when is None:
        return True
    try:
        return bool(evaluate_expression(step.when, context))
    except Exception as exc:
        raise StepError(f"cannot evaluate when: {exc}") from exc

"""A step's run-time values: the template context, its rendered action, its ``when``."""

from __future__ import annotations

from collections.abc import Mapping
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


def template_context(plan: Plan, steps: Mapping[str, StepRecord]) -> dict[str, Any]:
    """``params`` and the outputs of every step that succeeded so far."""
    outputs = {
        step_id: Namespace(
            f"steps.{step_id}", {"outputs": Namespace(f"steps.{step_id}.outputs", record.outputs)}
        )
        for step_id, record in steps.items()
        if record.state == StepState.SUCCEEDED
    }
    return {"params": Namespace("params", plan.params), "steps": Namespace("steps", outputs)}


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

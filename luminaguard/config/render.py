"""Rendering templates in workload steps: jinja2's sandbox, strict undefined, bounded cost.

``{{ params.NAME }}`` renders when the plan is compiled. ``{{ steps.ID.outputs.NAME }}``
is left in place for the runner, which renders it just before the step executes; the
compiler checks that such a reference names an earlier step (one the step needs) and an
output that step has. A value that is exactly one expression keeps its native type.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

#: Outputs of a step that later steps may use, by step kind.
STEP_OUTPUTS: dict[str, tuple[str, ...]] = {
    "run": ("stdout", "stderr", "exit_code"),
    "call": ("text", "structured", "is_error"),
}

_MAX_REPEAT = 100_000
_MAX_EXPONENT = 64


class Namespace(dict[str, Any]):
    """A mapping that names itself in 'undefined' messages (``params``, ``steps.fetch``)."""

    def __init__(self, label: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.label = label


class _Undefined(StrictUndefined):
    """Strict undefined whose message names the namespace and the close alternatives."""

    @property
    def _undefined_message(self) -> str:
        owner = self._undefined_obj
        if isinstance(owner, Namespace) and isinstance(self._undefined_name, str):
            name = self._undefined_name
            close = difflib.get_close_matches(name, list(owner), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(owner)) or "none"
            return f"undefined template variable {owner.label}.{name}{hint} (defined: {known})"
        if self._undefined_hint is not None:
            return self._undefined_hint
        if self._undefined_obj is missing:
            return f"undefined template variable {self._undefined_name!r}"
        return "undefined template variable: " + super()._undefined_message


class _BoundedSandbox(SandboxedEnvironment):
    """The jinja2 sandbox with repetition and exponentiation bounded (no memory bombs)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is larger than {_MAX_EXPONENT}")
            return operator.pow(left, right)
        for seq, count in ((left, right), (right, left)):
            if (
                isinstance(seq, str | list)
                and isinstance(count, int)
                and count * len(seq) > _MAX_REPEAT
            ):
                raise SecurityError(f"repetition would build more than {_MAX_REPEAT} items")
        return operator.mul(left, right)


ENVIRONMENT = _BoundedSandbox(undefined=_Undefined, autoescape=False, keep_trailing_newline=True)


class TemplateProblem(Exception):
    """A template that cannot be rendered; the message says why."""


@dataclass
class StepRefs:
    """What ``steps.ID`` references a value contains."""

    step_ids: set[str] = field(default_factory=set)

    @property
    def runtime(self) -> bool:
        """Whether the value can only be known at run time."""
        return bool(self.step_ids)


def is_template(text: str) -> bool:
    """Whether ``text`` contains template syntax."""
    return "{{" in text or "{%" in text or "{#" in text


def _parse(text: str) -> nodes.Template:
    try:
        return ENVIRONMENT.parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}") from exc


def _is_steps(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "steps"


def _step_refs(ast: nodes.Template) -> set[str]:
    found: set[str] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr) and _is_steps(node.node):
            found.add(node.attr)
        elif (
            isinstance(node, nodes.Getitem)
            and _is_steps(node.node)
            and isinstance(node.arg, nodes.Const)
        ):
            found.add(str(node.arg.value))
    return found


def referenced_steps(text: str) -> set[str]:
    """IDs of the steps whose outputs a template uses (``steps.ID`` or ``steps['ID']``)."""
    return _step_refs(_parse(text))


def _lone_expression(ast: nodes.Template) -> nodes.Expr | None:
    """The expression of a template that is one ``{{ ... }}`` and blanks, else None."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    parts = [
        node
        for node in ast.body[0].nodes
        if not (isinstance(node, nodes.TemplateData) and not node.data.strip())
    ]
    if len(parts) == 1 and not isinstance(parts[0], nodes.TemplateData):
        return parts[0]
    return None


class StringTemplate:
    """One templated string, parsed and compiled once: the steps it uses, and its renderer.

    A string that is exactly one expression renders to the expression's native value.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        ast = _parse(text)
        self.steps = frozenset(_step_refs(ast))
        expression = _lone_expression(ast)
        try:
            if expression is None:
                self._template: Template | TemplateExpression = ENVIRONMENT.from_string(ast)
            else:
                store = nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)
                wrapped = ENVIRONMENT.from_string(nodes.Template([store], lineno=1))
                self._template = TemplateExpression(wrapped, undefined_to_none=False)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(f"template syntax error: {exc.message}") from exc

    def render(self, context: Mapping[str, Any]) -> Any:
        """The rendered value, or TemplateProblem saying why it cannot be rendered."""
        try:
            if isinstance(self._template, TemplateExpression):
                return _defined(self._template(**context))
            return self._template.render(**context)
        except SecurityError as exc:
            raise TemplateProblem(f"template may not reach Python internals: {exc}") from exc
        except UndefinedError as exc:
            raise TemplateProblem(str(exc.message)) from exc
        except TemplateError as exc:
            raise TemplateProblem(f"template error: {exc}") from exc
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise TemplateProblem(f"template error: {exc}") from exc


def _defined(value: Any) -> Any:
    """``value`` itself, or the undefined-variable error an Undefined stands for."""
    if isinstance(value, Undefined):
        str(value)  # a strict Undefined raises here, naming the missing variable
    return value


def render_text(text: str, context: Mapping[str, Any]) -> Any:
    """Render one string, or raise TemplateProblem; strings without templates pass through."""
    return StringTemplate(text).render(context) if is_template(text) else text


def check_expression(expression: str, context: Mapping[str, Any]) -> None:
    """Check a ``when:`` expression compiles and names only defined values."""
    try:
        compiled = ENVIRONMENT.compile_expression(expression, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"expression syntax error: {exc.message}") from exc
    try:
        _defined(compiled(**context))
    except SecurityError as exc:
        raise TemplateProblem(f"expression may not reach Python internals: {exc}") from exc
    except UndefinedError as exc:
        raise TemplateProblem(str(exc.message)) from exc
    except (TemplateError, ArithmeticError, TypeError, ValueError):
        pass  # placeholder values at compile time may not suit the operators; fine


def evaluate_expression(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a ``when:`` expression at run time."""
    return StringTemplate("{{" + expression + "}}").render(context)

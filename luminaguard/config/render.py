"""Rendering templates in workload steps: jinja2's sandbox, strict undefined, bounded cost.

``{{ params.NAME }}`` renders when the plan is compiled. ``{{ steps.ID.outputs.NAME }}``
is left in place for the runner, which renders it just before the step executes; the
compiler checks that such a reference names an earlier step (one the step needs) and an
output that step has. A value that is exactly one expression keeps its native type.
"""

from __future__ import annotations

import difflib
import functools
import operator
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

from luminaguard.shell.template import PlacementError, marker, render_command

#: Outputs of a step that later steps may use, by step kind.
STEP_OUTPUTS: dict[str, tuple[str, ...]] = {
    "run": ("stdout", "stderr", "exit_code"),
    "call": ("text", "structured", "is_error"),
}

_MAX_REPEAT = 100_000
_MAX_EXPONENT = 64
_MAX_TEXT = 1_000_000
_FORMAT_WIDTH = re.compile(r"(?:%[-+ #0]*|\{[^{}]*?:[^{}]*?)(\d{7,})")


class Namespace(dict[str, Any]):
    """A mapping that names itself in 'undefined' messages (``params``, ``steps.fetch``)."""

    def __init__(self, label: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.label = label


def _labelled(obj: Any) -> bool:
    """Whether ``obj`` is a mapping that names itself like a Namespace (``label``)."""
    return isinstance(obj, Mapping) and isinstance(getattr(obj, "label", None), str)


class _Undefined(StrictUndefined):
    """Strict undefined whose message names the namespace and the close alternatives."""

    @property
    def _undefined_message(self) -> str:
        owner = self._undefined_obj
        # a Namespace, or a view that names itself likewise (the runner's ``steps``)
        labelled = isinstance(owner, Mapping) and isinstance(getattr(owner, "label", None), str)
        if labelled and isinstance(self._undefined_name, str):
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


class _TooLarge(SecurityError):
    """A template would build a value larger than the bound."""


def _width(number: object) -> None:
    if isinstance(number, int) and not isinstance(number, bool) and abs(number) > _MAX_TEXT:
        raise _TooLarge(f"a size of {number} is larger than {_MAX_TEXT}")


def _format_widths(text: object) -> None:
    """Refuse a format string asking for a field wider than the output may be."""
    if isinstance(text, str):
        for digits in _FORMAT_WIDTH.findall(text):
            _width(int(digits))


def _bounded_args(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        _width(value)


def _bounded_result(value: Any) -> Any:
    if isinstance(value, str | list | bytes) and len(value) > _MAX_TEXT:
        raise _TooLarge(f"a value of {len(value)} items is larger than {_MAX_TEXT}")
    return value


def _replacement_size(text: object, args: tuple[Any, ...]) -> None:
    if isinstance(text, str) and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        old, new = args[0], args[1]
        grows = len(new) - len(old)
        if (
            grows > 0
            and len(text) + (text.count(old) if old else len(text) + 1) * grows > _MAX_TEXT
        ):
            raise _TooLarge(f"the replacement would build more than {_MAX_TEXT} characters")


def _bounded_filter(name: str, function: Any) -> Any:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        plain = tuple(a for a in args if not hasattr(a, "environment"))  # context arguments
        _bounded_args(plain[1:], kwargs)
        if name == "format" and plain:
            _format_widths(plain[0])
        if name == "replace" and plain:
            _replacement_size(plain[0], plain[1:])
        return _bounded_result(function(*args, **kwargs))

    for flag in ("jinja_pass_arg",):
        if hasattr(function, flag):
            setattr(bounded, flag, getattr(function, flag))
    return bounded


class _BoundedSandbox(SandboxedEnvironment):
    """The jinja2 sandbox with every size bounded: repetition, exponents, widths, results.

    A template must not be able to exhaust the compiler's memory (``'x'|center(10**10)``):
    numbers that size a result are refused, and so is any result larger than a megabyte.
    """

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def getattr(self, obj: Any, attribute: str) -> Any:
        """A name of a Namespace (a param, a step ID) before the attributes it has as a dict.

        ``params.label`` read the Namespace's own label ("params"), not the param
        ``label``; ``params.items`` the dict's method, not the param ``items``. Any
        mapping that names itself with a ``label`` (a read-only view of the steps, as
        the runner may pass) is read the same way.
        """
        if (isinstance(obj, Namespace) or _labelled(obj)) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``__obj`` if the sandbox allows it and no argument sizes a huge result."""
        _bounded_args(args, kwargs)
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        name = getattr(__obj, "__name__", "")
        if name in ("format", "format_map"):
            _format_widths(owner)
        elif name == "replace":
            _replacement_size(owner, args)
        return _bounded_result(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "%":
            _format_widths(left)
            return _bounded_result(operator.mod(left, right))
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


class TemplateProblem(Exception):
    """A template that cannot be rendered; the message says why."""


def _data(value: Any) -> Any:
    """``value``, unless it is a method or function rather than data.

    A lookup prefers attributes: ``x.items`` on ``{"items": [...]}`` is the dict's method,
    and a step's hostile output may give a string where a mapping was meant, making
    ``x.title`` ``str.title``. Such a value is refused (a failed step), never written out
    (its address) nor passed on as an argument (it has no JSON form: the run crashed).
    """
    if callable(value) and not isinstance(value, Undefined):
        raise TemplateProblem(
            f"a template value is a Python {type(value).__name__}, not data "
            "(to read a key named like a method, such as items or values, write x['items'])"
        )
    return value


def _command_value(value: Any) -> str:
    return marker(_data(value))


ENVIRONMENT = _BoundedSandbox(
    undefined=_Undefined, autoescape=False, keep_trailing_newline=True, finalize=_data
)
#: For ``run:`` commands: each value is quoted as one shell word (``shell.template``).
COMMAND_ENVIRONMENT = _BoundedSandbox(
    undefined=_Undefined, autoescape=False, keep_trailing_newline=True, finalize=_command_value
)


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
    return set(string_template(text).steps)


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


def _lookup(node: nodes.Node) -> tuple[str, ...] | None:
    """``a.b.c`` as ``("a", "b", "c")``; None for any other expression."""
    names: list[str] = []
    while isinstance(node, nodes.Getattr):
        names.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name):
        return None
    return (node.name, *reversed(names))


Parts = list[str | tuple[str, ...]]


def _lookups(ast: nodes.Template) -> Parts | None:
    """A template of text and ``{{ a.b.c }}`` lookups as its parts, else None."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    parts: Parts = []
    for node in ast.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append(node.data)
            continue
        found = _lookup(node)
        if found is None:
            return None
        parts.append(found)
    return parts


_NAME = "[A-Za-z_][A-Za-z0-9_]*"
#: One ``{{ a.b.c }}`` with blanks inside and no whitespace control (``{{-``, ``-}}``).
_PLAIN_LOOKUP = re.compile(rf"\{{\{{[ \t]*({_NAME}(?:\.{_NAME})*)[ \t]*\}}\}}")
#: Names that jinja2 reads as constants or operators, not as variables: left to jinja2.
_WORDS = frozenset(
    {"true", "false", "True", "False", "none", "None", "and", "or", "not", "in", "is", "if"}
    | {"else", "recursive"}
)


def plain_parts(text: str) -> Parts | None:
    """The parts of a template of text and ``{{ a.b.c }}`` lookups, read without jinja2.

    The same parts as jinja2's parse gives (``_lookups``) for the templates it accepts,
    None for any other (blocks, comments, filters, calls, whitespace control, keywords,
    a carriage return jinja2 would turn into a newline): those are parsed by jinja2.
    """
    if "{%" in text or "{#" in text or "\r" in text:
        return None
    parts: Parts = []
    start = 0
    while (found := text.find("{{", start)) >= 0:  # jinja2 opens at the first ``{{``
        match = _PLAIN_LOOKUP.match(text, found)
        names = tuple(match[1].split(".")) if match else ()
        if match is None or not _WORDS.isdisjoint(names):
            return None
        if found > start:
            parts.append(text[start:found])
        parts.append(names)
        start = match.end()
    if start < len(text):
        parts.append(text[start:])
    return parts


def _plain_facts(parts: Parts) -> tuple[frozenset[str], bool]:
    """The steps the lookups use, and whether the parts are one lookup and blanks.

    The steps as ``steps.NAME...``; the second as ``_lone_expression`` finds. One pass.
    """
    steps: set[str] = set()
    lookups = texts = 0
    for part in parts:
        if isinstance(part, str):
            texts += bool(part.strip())
            continue
        lookups += 1
        if part[0] == "steps" and len(part) > 1:
            steps.add(part[1])
    return frozenset(steps), lookups == 1 and not texts


def _looked_up_value(names: tuple[str, ...], context: Mapping[str, Any]) -> Any:
    """``a.b.c`` in ``context`` through the sandbox; ``missing`` when a name is not there."""
    if names[0] not in context:
        return missing
    value = context[names[0]]
    for name in names[1:]:
        value = ENVIRONMENT.getattr(value, name)
        if isinstance(value, Undefined):
            return missing
    return value


class StringTemplate:
    """One templated string, parsed once: the steps it uses, and its renderer.

    A template of text and plain ``{{ a.b.c }}`` lookups is read without jinja2 and
    rendered by looking the values up through the sandbox; any other is parsed by the
    sandboxed environment. Either is compiled to Python only when a lookup fails (for
    jinja2's own message) or the template is more than lookups.

    A string that is exactly one expression renders to the expression's native value.
    """

    #: Whether a lone expression renders to its own value (else always to text).
    native = True

    def __init__(self, text: str) -> None:
        self.text = text
        self._ast: nodes.Template | None = None
        self._lookups = plain_parts(text)
        if self._lookups is None:
            self._ast = _parse(text)
            self.steps = frozenset(_step_refs(self._ast))
            self._lookups = _lookups(self._ast)
            self._lone = _lone_expression(self._ast) is not None
        else:
            self.steps, self._lone = _plain_facts(self._lookups)
        self._template: Template | TemplateExpression | None = None

    def _build(self, ast: nodes.Template) -> Template | TemplateExpression:
        """The template compiled to Python by the sandbox (compiling costs about 1 ms)."""
        expression = _lone_expression(ast) if self.native else None
        if expression is None:
            return ENVIRONMENT.from_string(ast)
        store = nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)
        wrapped = ENVIRONMENT.from_string(nodes.Template([store], lineno=1))
        return TemplateExpression(wrapped, undefined_to_none=False)

    def _compiled(self) -> Template | TemplateExpression:
        """The compiled template, on first need."""
        if self._template is None:
            ast = self._ast if self._ast is not None else _parse(self.text)
            try:
                self._template = self._build(ast)
            except TemplateSyntaxError as exc:
                raise TemplateProblem(f"template syntax error: {exc.message}") from exc
        return self._template

    def _output(self, value: Any) -> str:
        """One looked-up value as text, as the compiled template writes it."""
        return str(_data(value))

    def _looked_up(self, context: Mapping[str, Any]) -> Any:
        """The value of a template of text and plain lookups only, without compiling it.

        ``missing`` when a name or attribute is not there: the compiled template then says
        why, as it would have. Lookups go through the sandbox, as compiled ones do.
        """
        texts: list[str] = []
        for part in self._lookups or ():
            if isinstance(part, str):
                texts.append(part)
                continue
            value = _looked_up_value(part, context)
            if value is missing:
                return missing
            if self._lone and self.native:
                return _data(value)  # the one expression, blanks around it: its own value
            texts.append(self._output(value))
        return "".join(texts)

    def render(self, context: Mapping[str, Any]) -> Any:
        """The rendered value, or TemplateProblem saying why it cannot be rendered."""
        try:
            if self._lookups is not None:
                value = self._looked_up(context)
                if value is not missing:
                    return value
            template = self._compiled()
            if isinstance(template, TemplateExpression):
                return _data(_defined(template(**context)))
            return template.render(**context)
        except _TooLarge as exc:
            raise TemplateProblem(f"template refused: {exc}") from exc
        except SecurityError as exc:
            raise TemplateProblem(f"template may not reach Python internals: {exc}") from exc
        except UndefinedError as exc:
            raise TemplateProblem(str(exc.message)) from exc
        except TemplateError as exc:
            raise TemplateProblem(f"template error: {exc}") from exc
        except MemoryError as exc:
            raise TemplateProblem("template refused: it would build a value too large") from exc
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise TemplateProblem(f"template error: {exc}") from exc


class CommandTemplate(StringTemplate):
    """A ``run:`` command template: always text, each value exactly one shell word.

    Every value goes through ``marker`` (the command environment's finalize), looked up
    or compiled, and ``render_command`` then quotes it for the place it stands in.
    """

    native = False

    def _build(self, ast: nodes.Template) -> Template | TemplateExpression:
        return COMMAND_ENVIRONMENT.from_string(ast)

    def _output(self, value: Any) -> str:
        return str(_command_value(value))

    def render(self, context: Mapping[str, Any]) -> str:
        """The command with each value quoted, or TemplateProblem saying why it cannot be."""
        try:
            return render_command(lambda: super(CommandTemplate, self).render(context))
        except PlacementError as exc:
            raise TemplateProblem(str(exc)) from exc


#: Templates kept parsed (and compiled, once rendered that way), by kind and text.
CACHE_SIZE = 4096


@functools.lru_cache(maxsize=CACHE_SIZE)
def string_template(text: str) -> StringTemplate:
    """The template of ``text``, parsed once while it stays in the cache."""
    return StringTemplate(text)


@functools.lru_cache(maxsize=CACHE_SIZE)
def command_template(text: str) -> CommandTemplate:
    """The ``run:`` command template of ``text``, parsed once while it stays in the cache."""
    return CommandTemplate(text)


def _defined(value: Any) -> Any:
    """``value`` itself, or the undefined-variable error an Undefined stands for."""
    if isinstance(value, Undefined):
        str(value)  # a strict Undefined raises here, naming the missing variable
    return value


def render_text(text: str, context: Mapping[str, Any]) -> Any:
    """Render one string, or raise TemplateProblem; strings without templates pass through."""
    return string_template(text).render(context) if is_template(text) else text


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
    return string_template("{{" + expression + "}}").render(context)


def render_command_text(text: str, context: Mapping[str, Any]) -> str:
    """Render a ``run:`` command: every template value becomes exactly one shell word."""
    if not is_template(text):
        return text
    return command_template(text).render(context)

"""The form of an MCP question (elicitation): a server's schema parsed, an answer checked.

A server asks with a JSON Schema, which MCP restricts to one flat object of primitive
fields. The server is hostile, so its schema is parsed into ``Form`` -- what a person
is shown and what an answer may hold -- and refused (``FormError``) unless it is that
subset and within bounds: at most ``MAX_FIELDS`` fields with plain names, texts of
bounded length, known types only. An answer is checked against the form before it is
recorded or sent: known fields only, every required one, each of its type and within
its bounds. Values are data; nothing here interprets them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, TypeGuard

MAX_FIELDS = 32
MAX_MESSAGE = 4000
MAX_TEXT = 1000  # a field's title or description
MAX_SCHEMA = 32 << 10  # bytes of the schema as JSON
MAX_VALUE = 10_000  # characters of one answered string
MAX_CHOICES = 100
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")  # never "__proto__"
KINDS = ("string", "number", "integer", "boolean", "choice", "choices")

#: One answered value, as MCP carries it.
Value = str | int | float | bool | list[str] | None


class FormError(ValueError):
    """A schema that is not a form this client shows, or an answer the form refuses."""


@dataclass(frozen=True)
class Field:
    """One field: its name, kind (``KINDS``), texts, bounds and choices."""

    name: str
    kind: str
    title: str = ""
    description: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # of a number, or of a string's or list's length
    maximum: float | None = None
    default: Value = None

    def check(self, value: object) -> Value:
        """The value if this field accepts it; ``FormError`` naming the field otherwise."""
        checked = _CHECKS[self.kind](self, value)
        size = len(checked) if isinstance(checked, str | list) else checked
        if isinstance(size, int | float) and not isinstance(size, bool):
            if self.minimum is not None and size < self.minimum:
                raise FormError(f"{self.name}: below the minimum ({_num(self.minimum)})")
            if self.maximum is not None and size > self.maximum:
                raise FormError(f"{self.name}: above the maximum ({_num(self.maximum)})")
        return checked

    def from_text(self, text: str) -> Value:
        """A typed value from what a person typed (a terminal's text box)."""
        if self.kind == "boolean":
            return text.strip().lower() in ("true", "yes", "y", "1", "on")
        if self.kind in ("number", "integer"):
            try:
                number = float(text) if self.kind == "number" else int(text)
            except ValueError:
                raise FormError(f"{self.name}: {text!r} is not a {self.kind}") from None
            return number
        if self.kind == "choices":
            return [part.strip() for part in text.split(",") if part.strip()]
        return text

    def to_json(self) -> dict[str, Any]:
        """The field as the web page and the API show it."""
        return {
            "name": self.name, "kind": self.kind, "title": self.title,
            "description": self.description, "required": self.required,
            "choices": list(self.choices), "minimum": self.minimum,
            "maximum": self.maximum, "default": self.default,
        }  # fmt: skip


@dataclass(frozen=True)
class Form:
    """The fields a question asks for, in the server's order."""

    fields: tuple[Field, ...] = field(default_factory=tuple)

    def check(self, content: object) -> dict[str, Value]:
        """The answer if the form accepts it: known fields, the required ones, valid values."""
        if not isinstance(content, dict):
            raise FormError("an answer is an object of field values")
        known = {f.name: f for f in self.fields}
        unknown = sorted(str(name) for name in content if name not in known)
        if unknown:
            raise FormError(f"no such field: {', '.join(unknown)[:200]}")
        answer: dict[str, Value] = {}
        for each in self.fields:
            if content.get(each.name) is None:
                if each.required:
                    raise FormError(f"{each.name}: required")
                continue
            answer[each.name] = each.check(content[each.name])
        return answer

    def to_json(self) -> list[dict[str, Any]]:
        """The fields as the web page and the API show them."""
        return [each.to_json() for each in self.fields]


def parse_form(schema: object) -> Form:
    """The form a server's ``requestedSchema`` describes; ``FormError`` if it is none."""
    if not isinstance(schema, dict):
        raise FormError("the requested schema is not an object")
    try:
        size = len(json.dumps(schema, default=str))
    except (ValueError, TypeError, RecursionError):  # nested too deep, or not JSON
        raise FormError("the requested schema is not plain JSON of a usable depth") from None
    if size > MAX_SCHEMA:
        raise FormError(f"the requested schema is over {MAX_SCHEMA} bytes")
    if schema.get("type") != "object":
        raise FormError("the requested schema is not of type 'object'")
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        raise FormError("the requested schema has no properties")
    if len(properties) > MAX_FIELDS:
        raise FormError(f"the requested schema has over {MAX_FIELDS} fields")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(
        isinstance(name, str) and name in properties for name in required
    ):
        raise FormError("'required' names a field the schema does not have")
    return Form(tuple(_field(name, spec, name in required) for name, spec in properties.items()))


def _field(name: object, spec: object, required: bool) -> Field:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise FormError(f"field name {str(name)[:70]!r} is not a plain name")
    if not isinstance(spec, dict):
        raise FormError(f"{name}: the field's schema is not an object")
    kind, choices = _kind(name, spec)
    low, high = ("minimum", "maximum") if kind in ("number", "integer") else _LENGTHS[kind]
    made = Field(
        name=name,
        kind=kind,
        title=_text(name, spec.get("title")),
        description=_text(name, spec.get("description")),
        required=required,
        choices=choices,
        minimum=_bound(name, spec.get(low)),
        maximum=_bound(name, spec.get(high)),
    )
    default = spec.get("default")
    return made if default is None else _with_default(made, default)


_LENGTHS = {
    "string": ("minLength", "maxLength"),
    "choices": ("minItems", "maxItems"),
    "choice": ("", ""),
    "boolean": ("", ""),
}


def _kind(name: str, spec: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    kind = spec.get("type")
    if kind == "string" and ("enum" in spec or "oneOf" in spec):
        return "choice", _choices(name, spec)
    if kind == "array":
        items = spec.get("items")
        if not isinstance(items, dict) or not ("enum" in items or "anyOf" in items):
            raise FormError(f"{name}: an array field must list its choices")
        return "choices", _choices(name, items)
    if kind not in ("string", "number", "integer", "boolean"):
        raise FormError(f"{name}: type {str(kind)[:40]!r} is not a form field's type")
    return str(kind), ()


def _choices(name: str, spec: dict[str, Any]) -> tuple[str, ...]:
    if "enum" in spec:
        values = spec["enum"]
    else:  # titled choices: oneOf/anyOf of {const, title}
        options = spec.get("oneOf", spec.get("anyOf"))
        if not isinstance(options, list):
            raise FormError(f"{name}: choices must be a list of 1 to {MAX_CHOICES}")
        values = [o.get("const") if isinstance(o, dict) else None for o in options]
    if not isinstance(values, list) or not 0 < len(values) <= MAX_CHOICES:
        raise FormError(f"{name}: choices must be a list of 1 to {MAX_CHOICES}")
    if not all(isinstance(v, str) and len(v) <= MAX_TEXT for v in values):
        raise FormError(f"{name}: each choice must be a short string")
    return tuple(values)


def _text(name: str, value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise FormError(f"{name}: a title or description must be a string of {MAX_TEXT} or less")
    return value


def _bound(name: str, value: object) -> float | None:
    if value is None:
        return None
    if not _finite(value):
        raise FormError(f"{name}: a bound must be a finite number")
    return float(value)


def _with_default(made: Field, default: object) -> Field:
    try:
        checked = made.check(default)
    except FormError:
        raise FormError(f"{made.name}: the default is not a valid value") from None
    return dataclasses.replace(made, default=checked)


def _string(f: Field, value: object) -> str:
    if not isinstance(value, str):
        raise FormError(f"{f.name}: a text is expected")
    if len(value) > MAX_VALUE:
        raise FormError(f"{f.name}: over {MAX_VALUE} characters")
    return value


def _finite(value: object) -> TypeGuard[int | float]:
    """A JSON number a float can hold: not a bool, not infinite, not a huge integer."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _number(f: Field, value: object) -> float | int:
    if not _finite(value):
        raise FormError(f"{f.name}: a number is expected")
    return value


def _integer(f: Field, value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not _finite(value) or not isinstance(value, int):
        raise FormError(f"{f.name}: a whole number is expected")
    return value


def _boolean(f: Field, value: object) -> bool:
    if not isinstance(value, bool):
        raise FormError(f"{f.name}: true or false is expected")
    return value


def _choice(f: Field, value: object) -> str:
    if value not in f.choices:
        raise FormError(f"{f.name}: not one of the choices")
    return str(value)


def _several(f: Field, value: object) -> list[str]:
    if not isinstance(value, list) or any(v not in f.choices for v in value):
        raise FormError(f"{f.name}: a list of the choices is expected")
    if len(set(value)) != len(value):
        raise FormError(f"{f.name}: a choice is listed twice")
    return [str(v) for v in value]


_CHECKS = {
    "string": _string,
    "number": _number,
    "integer": _integer,
    "boolean": _boolean,
    "choice": _choice,
    "choices": _several,
}


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)

"""Validating raw YAML documents against the kind models, with errors at file:line:col."""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from luminaguard.config.diagnostics import Diagnostic
from luminaguard.config.location import NodePath
from luminaguard.config.models import API_VERSION, KINDS, AnyDocument
from luminaguard.config.schema_walk import description_at, field_names_at
from luminaguard.config.yamlsource import RawDocument

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


@dataclass(frozen=True)
class Document:
    """A validated document: its typed model and the raw source it came from."""

    model: AnyDocument
    source: RawDocument

    @property
    def kind(self) -> str:
        """The document's kind: Image, Pool, Agent, Policy or Workload."""
        return self.model.kind

    @property
    def name(self) -> str:
        """``metadata.name``."""
        return self.model.metadata.name


def did_you_mean(word: str, choices: list[str]) -> str:
    """A ``; did you mean 'x'?`` suffix when one of ``choices`` is close to ``word``."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def dotted(path: NodePath) -> str:
    """``spec.steps[2].args`` for a node path."""
    text = ""
    for element in path:
        text += f"[{element}]" if isinstance(element, int) else f".{element}"
    return text.lstrip(".") or "document"


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    names |= {dict: "mapping", list: "list", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _child(data: Any, element: str | int) -> tuple[bool, Any]:
    if isinstance(data, dict) and isinstance(element, str) and element in data:
        return True, data[element]
    if isinstance(data, list) and isinstance(element, int) and 0 <= element < len(data):
        return True, data[element]
    return False, data


def _data_path(data: Any, loc: tuple[str | int, ...]) -> NodePath:
    """The part of a pydantic ``loc`` that names nodes present in the data."""
    path: list[str | int] = []
    for element in loc:
        present, data = _child(data, element)
        if present:
            path.append(element)
    return tuple(path)


def _value_at(data: Any, path: NodePath) -> Any:
    for element in path:
        data = data[element]
    return data


class _ErrorMapper:
    """Turns the errors of one pydantic validation into located diagnostics."""

    def __init__(self, raw: RawDocument, model: type[BaseModel]) -> None:
        self.raw = raw
        self.model = model
        self.expected: dict[NodePath, list[str]] = {}
        self.diagnostics: dict[tuple[NodePath, str], Diagnostic] = {}

    def add(self, error: ErrorDetails) -> None:
        path = _data_path(self.raw.data, error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            self._unknown_field(path)
        elif kind == "missing":
            name = str(error["loc"][-1])
            where = self.raw.locations.value(path)
            message = f"{dotted(path)}: missing required field {name!r}"
            self.diagnostics[(path, name)] = Diagnostic(where, message)
        elif kind in _EXPECTED:
            self.expected.setdefault(path, []).append(_EXPECTED[kind])
        elif kind == "literal_error":
            self.expected.setdefault(path, []).append(str(error.get("ctx", {}).get("expected")))
        else:
            self._other(path, error)

    def _unknown_field(self, path: NodePath) -> None:
        name = str(path[-1])
        allowed = field_names_at(self.model, path[:-1])
        hint = did_you_mean(name, allowed) or f"; expected one of: {', '.join(sorted(allowed))}"
        message = f"{dotted(path[:-1])}: unknown field {name!r}{hint}"
        self.diagnostics[(path, "extra")] = Diagnostic(self.raw.locations.key(path), message)

    def _other(self, path: NodePath, error: ErrorDetails) -> None:
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch":
            rule = description_at(self.model, path) or message
            message = f"{_value_at(self.raw.data, path)!r} is not valid here: {rule}"
        text = f"{dotted(path)}: {message}"
        self.diagnostics[(path, text)] = Diagnostic(self.raw.locations.value(path), text)

    def result(self) -> list[Diagnostic]:
        found = list(self.diagnostics.values())
        for path, wanted in self.expected.items():
            value = _value_at(self.raw.data, path)
            choices = " or ".join(dict.fromkeys(wanted))
            message = f"{dotted(path)}: expected {choices}, got {_type_name(value)} {value!r}"
            found.append(Diagnostic(self.raw.locations.value(path), message))
        return found


def _envelope(raw: RawDocument) -> tuple[type[BaseModel] | None, list[Diagnostic]]:
    data, where = raw.data, raw.locations
    if not isinstance(data, dict):
        message = "a document must be a mapping with apiVersion, kind, metadata and spec"
        return None, [Diagnostic(raw.location, message)]
    problems: list[Diagnostic] = []
    version = data.get("apiVersion")
    if version is None:
        problems.append(Diagnostic(raw.location, f"missing apiVersion; expected {API_VERSION!r}"))
    elif version != API_VERSION:
        message = f"unknown apiVersion {version!r}; expected {API_VERSION!r}"
        problems.append(Diagnostic(where.value(("apiVersion",)), message))
    kind = data.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        names = sorted(KINDS)
        hint = did_you_mean(str(kind), names) if kind is not None else ""
        message = f"unknown kind {kind!r}; expected one of {', '.join(names)}{hint}"
        if kind is None:
            message = f"missing kind; expected one of {', '.join(names)}"
        problems.append(Diagnostic(where.value(("kind",)), message))
    return model, problems


def _without(data: Any, paths: list[tuple[str | int, ...]]) -> Any:
    """A copy of ``data`` with the mapping keys at ``paths`` removed."""
    data = copy.deepcopy(data)
    for path in paths:
        parent = _value_at(data, path[:-1])
        parent.pop(path[-1], None)
    return data


def validate_document(raw: RawDocument) -> tuple[Document | None, list[Diagnostic]]:
    """Validate one document; on failure return every problem found in it.

    A document whose only faults are unknown fields is still returned (validated
    without them), so that later checks can report the rest of its problems too.
    """
    model, problems = _envelope(raw)
    if model is None or problems:
        return None, problems
    try:
        return Document(model.model_validate(raw.data), raw), []  # type: ignore[arg-type]
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    mapper = _ErrorMapper(raw, model)
    for error in errors:
        mapper.add(error)
    if any(error["type"] != "extra_forbidden" for error in errors):
        return None, mapper.result()
    unknown = [_data_path(raw.data, error["loc"]) for error in errors]
    try:  # without them, a check of the whole model may fail (it ran only on valid fields)
        salvaged = model.model_validate(_without(raw.data, unknown))
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            mapper.add(error)
        return None, mapper.result()
    return Document(salvaged, raw), mapper.result()  # type: ignore[arg-type]

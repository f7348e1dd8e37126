"""Finding the model and field behind a path in a document, for precise error messages."""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from luminaguard.config.location import NodePath


def _alternatives(annotation: Any) -> list[Any]:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return [alt for arg in get_args(annotation) for alt in _alternatives(arg)]
    return [annotation]


def _field(model: type[BaseModel], name: str) -> FieldInfo | None:
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias):
            return info
    return None


def _descend(annotation: Any, element: str | int) -> tuple[Any, FieldInfo | None] | None:
    for alt in _alternatives(annotation):
        if isinstance(alt, type) and issubclass(alt, BaseModel) and isinstance(element, str):
            info = _field(alt, element)
            if info is not None:
                return info.annotation, info
        origin = get_origin(alt)
        if origin is list and isinstance(element, int):
            return get_args(alt)[0], None
        if origin is dict and isinstance(element, str):
            return get_args(alt)[1], None
    return None


def field_at(model: type[BaseModel], path: NodePath) -> FieldInfo | None:
    """The pydantic field that ``path`` ends on, when the path ends on a model field."""
    annotation: Any = model
    info: FieldInfo | None = None
    for element in path:
        found = _descend(annotation, element)
        if found is None:
            return None
        annotation, info = found
    return info


def _annotated_description(annotation: Any) -> str | None:
    if get_origin(annotation) is Annotated:
        for meta in get_args(annotation)[1:]:
            if isinstance(meta, FieldInfo) and meta.description:
                return meta.description
        return _annotated_description(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        found = (_annotated_description(arg) for arg in get_args(annotation))
        return next((text for text in found if text), None)
    return None


def description_at(model: type[BaseModel], path: NodePath) -> str | None:
    """The description of the field or constrained type that ``path`` ends on."""
    info = field_at(model, path)
    if info is None:
        return None
    return info.description or _annotated_description(info.annotation)


def field_names_at(model: type[BaseModel], path: NodePath) -> list[str]:
    """Names (aliases where set) of the fields the mapping at ``path`` may hold."""
    annotation: Any = model
    for element in path:
        found = _descend(annotation, element)
        if found is None:
            return []
        annotation = found[0]
    names: list[str] = []
    for alt in _alternatives(annotation):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            names.extend(info.alias or name for name, info in alt.model_fields.items())
    return names

"""Pieces shared by the kinds: the frozen base model, names, durations, secret references."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

API_VERSION = "luminaguard.dev/v1"

Risk = Literal["green", "red"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class Model(BaseModel):
    """Base of every config model: immutable, strict types, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def parse_duration(value: Any) -> Any:
    """Turn ``30``, ``"30s"``, ``"500ms"``, ``"5m"`` or ``"1h"`` into seconds."""
    if isinstance(value, bool):
        return value  # let the float validator refuse it
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        raise ValueError(f"{value!r} is not a duration; write e.g. 30, '30s', '500ms', '5m', '1h'")
    return value


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(gt=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
            ],
            "description": "seconds, or a number with a unit: ms, s, m, h",
        }
    ),
]

Name = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$",
        description="lower case letters, digits, '.', '_' and '-'; at most 63 characters",
    ),
]

Identifier = Annotated[
    str,
    Field(
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="lower case letters, digits and '_' (usable in templates as steps.ID)",
    ),
]


class Metadata(Model):
    """Name and labels of a document; the name is unique within its kind."""

    name: Name
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class SecretRef(Model):
    """A value taken at run time from the runner's environment; never written to the plan."""

    from_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


EnvValue = str | SecretRef

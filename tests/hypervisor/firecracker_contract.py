"""Validating Firecracker API requests against Firecracker's own API description (Swagger 2.0).

A request is valid when its path matches a path template (``/drives/{drive_id}``), the
method is defined there, and its body satisfies the body parameter's schema. Objects
that list their properties are closed (Firecracker refuses unknown fields), so a
misspelled field fails here as it would against a real Firecracker.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator


class Contract:
    """The paths, methods and body schemas of one API description."""

    def __init__(self, spec_file: Path) -> None:
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        self.definitions = {name: _closed(schema) for name, schema in spec["definitions"].items()}
        self.paths = {
            re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"): operations
            for template, operations in spec["paths"].items()
        }

    def problems(self, method: str, path: str, body: Any) -> list[str]:
        """Everything wrong with one request; empty when it is valid."""
        operations = next((ops for pattern, ops in self.paths.items() if pattern.match(path)), None)
        if operations is None:
            return [f"{path}: no such path in the API"]
        operation = operations.get(method.lower())
        if operation is None:
            return [f"{method} {path}: method not defined for this path"]
        schema = next(
            (p["schema"] for p in operation.get("parameters", []) if p.get("in") == "body"), None
        )
        if schema is None:
            return [] if body is None else [f"{method} {path}: takes no body"]
        validator = Draft4Validator({**schema, "definitions": self.definitions})
        return [f"{method} {path}: {error.message}" for error in validator.iter_errors(body)]


def _closed(schema: Any) -> Any:
    schema = copy.deepcopy(schema)
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
        for key in ("properties", "definitions"):
            if isinstance(schema.get(key), dict):
                schema[key] = {name: _closed(value) for name, value in schema[key].items()}
        if isinstance(schema.get("items"), dict):
            schema["items"] = _closed(schema["items"])
    return schema

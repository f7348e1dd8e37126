"""JSON Schemas of the kinds, generated from the models, for editors and CI.

Editors that speak the YAML language server validate a file that starts with
``# yaml-language-server: $schema=../schemas/luminaguard.schema.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from luminaguard.config.models import KINDS

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
COMBINED = "luminaguard.schema.json"


def schema_file(kind: str) -> str:
    """File name of one kind's schema: ``workload.schema.json``."""
    return f"{kind.lower()}.schema.json"


def kind_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind's documents."""
    schema = KINDS[kind].model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": schema_file(kind), **schema}


def combined_schema() -> dict[str, Any]:
    """A schema that accepts a document of any kind (for files that mix kinds)."""
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": COMBINED,
        "title": "LuminaGuard document",
        "anyOf": [{"$ref": schema_file(kind)} for kind in KINDS],
    }


def render_schemas() -> dict[str, str]:
    """Every schema file's name and exact text."""
    files = {schema_file(kind): kind_schema(kind) for kind in KINDS}
    files[COMBINED] = combined_schema()
    return {
        name: json.dumps(data, indent=2, ensure_ascii=False) + "\n" for name, data in files.items()
    }


def stale_schemas(directory: Path) -> list[str]:
    """Names of the schema files in ``directory`` that are missing or differ from the models."""
    stale = []
    for name, text in render_schemas().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def write_schemas(directory: Path) -> list[str]:
    """Write every schema file into ``directory``; return the names written."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render_schemas()
    for name, text in rendered.items():
        (directory / name).write_text(text, encoding="utf-8")
    return sorted(rendered)

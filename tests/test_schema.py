"""schemas/ is generated from the models, committed, and usable by editors."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from luminaguard.config.schema import render_schemas, stale_schemas
from luminaguard.config.yamlsource import parse_yaml
from tests.conftest import ROOT, CliRunner

SCHEMAS = ROOT / "schemas"


def test_committed_schemas_are_up_to_date() -> None:
    stale = stale_schemas(SCHEMAS)
    assert not stale, f"schemas/ is stale ({stale}); run: make schemas"


def test_no_extra_files_in_schemas() -> None:
    # and the API's OpenAPI document (tests/server/test_openapi.py checks it)
    expected = [*render_schemas(), "openapi.json"]
    assert sorted(p.name for p in SCHEMAS.iterdir()) == sorted(expected)


def test_check_fails_on_a_stale_folder(cli: CliRunner, tmp_path: Path) -> None:
    assert cli("schema", "--out", str(tmp_path)).code == 0
    assert cli("schema", "--check", "--out", str(tmp_path)).code == 0
    (tmp_path / "workload.schema.json").write_text("{}\n")
    result = cli("schema", "--check", "--out", str(tmp_path))
    assert result.code == 1
    assert "stale: " in result.out and "workload.schema.json" in result.out


def _validator() -> jsonschema.Draft202012Validator:
    registry: Registry = Registry()
    for path in SCHEMAS.glob("*.schema.json"):
        registry = registry.with_resource(
            path.name, Resource.from_contents(json.loads(path.read_text()))
        )
    combined = json.loads((SCHEMAS / "luminaguard.schema.json").read_text())
    return jsonschema.Draft202012Validator(combined, registry=registry)


def _documents() -> list[tuple[str, object]]:
    found = []
    for folder in ("examples", "policies", "workloads"):
        for path in sorted((ROOT / folder).rglob("*.yaml")):
            documents, problems = parse_yaml(str(path), path.read_text())
            assert not problems
            found += [(f"{path.name}#{i}", doc.data) for i, doc in enumerate(documents)]
    return found


@pytest.mark.parametrize(("name", "document"), _documents())
def test_schemas_accept_every_example(name: str, document: object) -> None:
    _validator().validate(document)


def test_schemas_refuse_an_unknown_field() -> None:
    document = {
        "apiVersion": "luminaguard.dev/v1",
        "kind": "Workload",
        "metadata": {"name": "w"},
        "spec": {"steps": [{"id": "a", "agent": "b", "run": "ls", "nedds": []}]},
    }
    assert not _validator().is_valid(document)

"""schemas/openapi.json: generated from the endpoints, committed, valid OpenAPI 3.1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import schemathesis

import luminaguard
from luminaguard.server.app import ENDPOINTS
from luminaguard.server.models import ErrorBody, Health
from luminaguard.server.openapi import API_VERSION, document, render
from tests.conftest import ROOT, CliRunner

COMMITTED = ROOT / "schemas" / "openapi.json"
REGENERATE = "run: make schemas (or: luminaguard serve --openapi > schemas/openapi.json)"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document(ENDPOINTS)


def test_the_committed_document_is_what_the_code_generates() -> None:
    assert COMMITTED.is_file(), f"schemas/openapi.json is missing; {REGENERATE}"
    committed = COMMITTED.read_text(encoding="utf-8")
    assert committed == render(ENDPOINTS), f"schemas/openapi.json is stale; {REGENERATE}"


def test_serve_openapi_prints_the_committed_text(cli: CliRunner) -> None:
    result = cli("serve", "--openapi")
    assert result.code == 0
    assert result.out == render(ENDPOINTS)


def test_a_release_does_not_make_the_document_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    before = render(ENDPOINTS)
    monkeypatch.setattr(luminaguard, "__version__", "99.0.0")
    assert render(ENDPOINTS) == before
    assert json.loads(before)["info"]["version"] == API_VERSION


def _schemas(node: Any) -> Iterator[Any]:
    """Every JSON Schema in the document: components and the inline ones."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema":
                yield value
            elif key == "schemas" and isinstance(value, dict):
                yield from value.values()
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    # the OpenAPI 3.1 meta-schema schemathesis bundles; it leaves the schemas inside alone
    schemathesis.openapi.from_dict(doc).validate()
    found = list(_schemas(doc))
    assert len(found) > 20
    for schema in found:  # so each is checked against JSON Schema 2020-12
        jsonschema.Draft202012Validator.check_schema(schema)


def test_the_validation_is_not_vacuous(doc: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(doc))
    del broken["info"]
    with pytest.raises(Exception, match="info"):
        schemathesis.openapi.from_dict(broken).validate()
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema({"type": "nonsense"})


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text))
    assert refs
    assert refs <= set(doc["components"]["schemas"])


def test_every_endpoint_and_path_parameter_is_documented(doc: dict[str, Any]) -> None:
    for endpoint in ENDPOINTS:
        operation = doc["paths"][endpoint.path][endpoint.method.lower()]
        in_path = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert in_path == set(re.findall(r"{(\w+)}", endpoint.path))
        assert str(endpoint.status) in operation["responses"]
        if endpoint.permission is not None:
            assert {"401", "403"} <= set(operation["responses"])
            assert operation["security"] == [{"bearer": []}]
        else:
            assert "security" not in operation
    operation_ids = [
        operation["operationId"] for path in doc["paths"].values() for operation in path.values()
    ]
    assert len(operation_ids) == len(set(operation_ids)) == len(ENDPOINTS)


def test_responses_are_documented_as_serialised(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    # fields with a default are always in a response: required, so a client may rely on them
    assert set(schemas["ErrorBody"]["required"]) == set(ErrorBody.model_fields)
    assert set(schemas["Health"]["required"]) == set(Health.model_fields)
    assert set(schemas["BatchResult"]["required"]) == {"status", "decided", "error"}
    # request bodies as parsed: optional fields stay optional, unknown ones are refused
    assert schemas["Decide"]["required"] == ["action_hash"]
    assert schemas["SubmitRun"]["additionalProperties"] is False
    assert "required" not in schemas["SubmitRun"]


def test_states_are_enumerated(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert "awaiting_approval" in schemas["StepState"]["enum"]
    assert set(schemas["RunState"]["enum"]) == {"running", "succeeded", "failed", "halted"}
    assert "expired" in schemas["ApprovalState"]["enum"]


def test_readiness_documents_its_503_body(doc: dict[str, Any]) -> None:
    responses = doc["paths"]["/readyz"]["get"]["responses"]
    schema = responses["503"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Health"}


def test_the_event_stream_documents_where_it_resumes(doc: dict[str, Any]) -> None:
    parameters = doc["paths"]["/v1/events"]["get"]["parameters"]
    assert {(p["name"], p["in"]) for p in parameters} == {
        ("Last-Event-ID", "header"),
        ("after", "query"),
    }

"""The OpenAPI document of the HTTP API, generated from its endpoints and models.

``luminaguard serve --openapi`` prints it; ``schemas/openapi.json`` is the committed
copy (``make schemas`` rewrites it), and a test fails when the two differ.

Request bodies are documented as they are parsed (pydantic's validation mode) and
responses as they are serialised (every field present, so required). ``info.version``
is the version of the API, not of the package: a release leaves the document as it was
unless the API changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from luminaguard.server.http import Endpoint, Param
from luminaguard.server.models import RUN_ID, ErrorBody

#: The API's version: the ``/v1`` of its paths. Bump it with an incompatible change.
API_VERSION = "1"
REF = "#/components/schemas/{model}"
_REASONS = {
    401: "no valid bearer token",
    403: "the token's role (or the request's approvers) does not allow it",
    404: "no such run, step or request",
    409: "conflicts with the current state (decided, expired, changed, exists)",
    413: "request body too large",
    415: "request body is not JSON",
    422: "a field is not valid (named in the body)",
    503: "not ready, or the server's tokens file is not usable",
}
_PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "run_id": {"description": "a run's id", "schema": {"type": "string", "pattern": RUN_ID}},
    "step_id": {"description": "a step's id in the run's plan", "schema": {"type": "string"}},
}
_TAGS = {
    "runs": "submit, follow and cancel runs; read their audit records",
    "approvals": "the Red steps waiting for a person: their cards and the decisions",
    "gitops": "what the reconciler applied from its source, and how each object stands",
    "questions": "questions MCP servers ask a person while a tool runs (elicitation)",
    "events": "changes as they are recorded (Server-Sent Events)",
    "health": "liveness, readiness and metrics",
}

#: Each (model, mode) its reference (pydantic types the keys more widely than it needs here).
Refs = Mapping[Any, dict[str, Any]]


def _uses(endpoints: tuple[Endpoint, ...]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Every model with the mode it is documented in: bodies parsed, responses serialised."""
    found: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for endpoint in endpoints:
        uses: list[tuple[type[BaseModel], JsonSchemaMode]] = []
        if endpoint.body is not None:
            uses.append((endpoint.body, "validation"))
        if endpoint.response is not None:
            uses.append((endpoint.response, "serialization"))
        uses += [(model, "serialization") for _, model in endpoint.replies]
        found += [use for use in uses if use not in found]
    return found


def _json(refs: Refs, model: type[BaseModel], media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": refs[(model, "serialization")]}}


def _responses(endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    if endpoint.response is not None:
        content = _json(refs, endpoint.response, endpoint.media)
    else:
        content = {endpoint.media: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(endpoint.status): {"description": "OK", "content": content}}
    codes = set(endpoint.errors) | ({401, 403, 503} if endpoint.permission else set())
    codes |= {413, 415, 422} if endpoint.body else set()
    for code in sorted(codes):
        responses[str(code)] = {"description": _REASONS[code], "content": _json(refs, ErrorBody)}
    if 401 in codes:
        challenge = {"description": "Bearer", "schema": {"type": "string"}}
        responses["401"]["headers"] = {"WWW-Authenticate": challenge}
    for code, model in endpoint.replies:
        responses[str(code)] = {"description": _REASONS[code], "content": _json(refs, model)}
    return dict(sorted(responses.items()))


def _parameter(param: Param) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if param.pattern is not None:
        schema["pattern"] = param.pattern
    return {
        "name": param.name,
        "in": param.location,
        "required": False,
        "description": param.description,
        "schema": schema,
    }


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    found = [
        {"name": name, "in": "path", "required": True, **_PATH_PARAMETERS.get(name, {})}
        for name in re.findall(r"{(\w+)}", endpoint.path)
    ]
    for parameter in found:
        parameter.setdefault("schema", {"type": "string"})
    return found + [_parameter(param) for param in endpoint.params]


def _tag(endpoint: Endpoint) -> str:
    parts = endpoint.path.strip("/").split("/")
    return parts[1] if parts[0] == "v1" else "health"


def _operation(endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": re.sub(r"\W+", "_", endpoint.summary),
        "summary": endpoint.summary,
        "description": (endpoint.handler.__doc__ or "").strip(),
        "tags": [_tag(endpoint)],
        "responses": _responses(endpoint, refs),
    }
    parameters = _parameters(endpoint)
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        schema = {"application/json": {"schema": refs[(endpoint.body, "validation")]}}
        operation["requestBody"] = {"required": True, "content": schema}
    if endpoint.permission is not None:
        operation["security"] = [{"bearer": []}]
        operation["x-permission"] = endpoint.permission.value
    return operation


def document(endpoints: tuple[Endpoint, ...]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``."""
    refs, schemas = models_json_schema(_uses(endpoints), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, refs)
    used = sorted({_tag(endpoint) for endpoint in endpoints})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LuminaGuard control plane",
            "version": API_VERSION,
            "description": (
                "Runs of compiled plans, driven by `luminaguard serve` over one state folder;"
                " Red steps halt until a person approves the exact action."
            ),
        },
        "tags": [{"name": name, "description": _TAGS[name]} for name in used],
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def render(endpoints: tuple[Endpoint, ...]) -> str:
    """The document as committed in ``schemas/openapi.json``: sorted keys, indented."""
    return json.dumps(document(endpoints), indent=2, sort_keys=True) + "\n"

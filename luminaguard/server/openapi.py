"""The OpenAPI document of the HTTP API, generated from its endpoints and models.

``luminaguard serve --openapi`` prints it; ``schemas/openapi.json`` is the committed
copy, and a test fails when the two differ.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from luminaguard import __version__
from luminaguard.server.http import Endpoint
from luminaguard.server.models import ErrorBody

REF = "#/components/schemas/{model}"
_REASONS = {
    401: "no valid bearer token",
    403: "the token's role (or the request's approvers) does not allow it",
    404: "no such run, step or request",
    409: "conflicts with the current state (decided, expired, changed, exists)",
    413: "request body too large",
    415: "request body is not JSON",
    422: "a field is not valid (named in the body)",
    503: "not ready",
}


def _models(endpoints: tuple[Endpoint, ...]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [ErrorBody]
    for endpoint in endpoints:
        for model in (endpoint.body, endpoint.response):
            if model is not None and model not in found:
                found.append(model)
    return found


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _responses(endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.response is not None:
        content = {endpoint.media: {"schema": _ref(endpoint.response)}}
    else:
        content = {endpoint.media: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(endpoint.status): {"description": "OK", "content": content}}
    codes = set(endpoint.errors) | ({401, 403} if endpoint.permission else set())
    codes |= {413, 415, 422} if endpoint.body else set()
    for code in sorted(codes):
        body = {"application/json": {"schema": _ref(ErrorBody)}}
        responses[str(code)] = {"description": _REASONS[code], "content": body}
    return responses


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": re.sub(r"\W+", "_", endpoint.summary),
        "summary": endpoint.summary,
        "description": (endpoint.handler.__doc__ or "").strip(),
        "responses": _responses(endpoint),
    }
    parameters = re.findall(r"{(\w+)}", endpoint.path)
    if parameters:
        operation["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in parameters
        ]
    if endpoint.body is not None:
        schema = {"application/json": {"schema": _ref(endpoint.body)}}
        operation["requestBody"] = {"required": True, "content": schema}
    if endpoint.permission is not None:
        operation["security"] = [{"bearer": []}]
        operation["x-permission"] = endpoint.permission.value
    return operation


def document(endpoints: tuple[Endpoint, ...]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``."""
    models = _models(endpoints)
    _, schemas = models_json_schema([(model, "validation") for model in models], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "LuminaGuard control plane", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }

"""The HTTP API under schemathesis: no 500s, every response as the OpenAPI document says.

The in-process app on the fakes (as in tests/server/test_app.py), called through one
starlette TestClient so that the server stays in its event-loop thread. ``/v1/events``
is a stream that stays open: left out here (tests/server covers it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import event, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from luminaguard.server.app import ENDPOINTS, build_app
from luminaguard.server.openapi import document
from tests.fuzz import fuzz
from tests.fuzz.test_loader_fuzz import YAMLISH
from tests.server.test_app import Late, _served

try:
    from starlette.testclient import TestClient
except (ImportError, RuntimeError):  # it needs httpx
    pytest.skip("starlette's TestClient needs httpx", allow_module_level=True)

SCHEMA = schemathesis.openapi.from_dict(document(ENDPOINTS))
OPERATIONS = SCHEMA.exclude(path="/v1/events")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class Served:
    """A started server on the fakes, a client, an admin token and the workspace."""

    def __init__(self, client: TestClient, headers: dict[str, str], workspace: Path) -> None:
        self.client = client
        self.headers = headers
        self.workspace = workspace


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("api")
    workspace = root / "workspace"
    workspace.mkdir()
    late = Late()
    with TestClient(late, raise_server_exceptions=False) as client:
        portal: Any = client.portal
        harness, server = portal.call(_served, root / "state", workspace)
        late.app = build_app(server)
        token = server.tokens.create("admin", "admin")
        portal.call(server.start)
        yield Served(client, {"Authorization": f"Bearer {token}"}, workspace)
        portal.call(server.stop, 1.0)
        portal.call(harness.store.close)
        harness.store.close = lambda: None


def _request(served: Served, case: Any) -> Any:
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=served.headers)
    method, url = kwargs.pop("method"), kwargs.pop("url")
    body = {k: kwargs[k] for k in ("json", "data", "content", "files") if kwargs.get(k) is not None}
    if kwargs.get("cookies"):  # per request cookies are deprecated: as a header
        cookie = "; ".join(f"{k}={v}" for k, v in kwargs["cookies"].items())
        kwargs["headers"] = {**(kwargs.get("headers") or {}), "Cookie": cookie}
    return served.client.request(
        method, url, params=kwargs.get("params"), headers=kwargs.get("headers"), **body
    )


@fuzz(120)
@given(case=OPERATIONS.as_strategy())
def test_no_server_errors_and_responses_match_the_document(served: Served, case: Any) -> None:
    response = _request(served, case)
    event(f"{case.method} {case.path} {response.status_code}")
    case.validate_response(response, checks=CHECKS)


@fuzz(60)
@given(case=OPERATIONS.as_strategy(schemathesis.GenerationMode.NEGATIVE))
def test_invalid_requests_are_refused_without_server_errors(served: Served, case: Any) -> None:
    response = _request(served, case)
    case.validate_response(response, checks=[not_a_server_error, content_type_conformance])


@fuzz(40)
@given(case=OPERATIONS.include(path="/v1/runs", method="POST").as_strategy())
def test_submitted_runs_are_refused_or_created(served: Served, case: Any) -> None:
    response = _request(served, case)
    event(f"{response.status_code}")
    case.validate_response(response, checks=CHECKS)


@fuzz(40)
@given(data=st.one_of(st.binary(max_size=256), st.lists(YAMLISH, max_size=40).map(b"".join)))
def test_submitted_paths_with_any_content_are_refused_as_the_client_error(
    served: Served, data: bytes
) -> None:
    (served.workspace / "in.yaml").write_bytes(data)
    response = served.client.post("/v1/runs", json={"paths": ["in.yaml"]}, headers=served.headers)
    event(f"{response.status_code}")
    assert response.status_code in (201, 422), response.text

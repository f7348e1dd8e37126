"""The API's plumbing: endpoints as data, bearer authentication, bodies, JSON errors.

Each endpoint is an ``Endpoint``: method, path, the permission it needs, its request
and response models. ``route`` turns one into a starlette route that authenticates
(401 without a valid token, 403 when the token's role lacks the permission), reads a
size-limited body and parses it with the request model (422 naming each bad field),
calls the handler and serialises what it returns. The OpenAPI document is generated
from the same endpoints (``openapi``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from luminaguard.errors import LuminaGuardError
from luminaguard.server.models import ErrorBody, FieldProblem
from luminaguard.server.tokens import Identity, Permission, TokenFileError, allows

if TYPE_CHECKING:
    from luminaguard.server.service import Server

log = logging.getLogger("luminaguard.server")

#: The largest request body accepted, in bytes (a compiled plan of a few thousand steps).
MAX_BODY = 4 << 20


class ApiError(LuminaGuardError):
    """A request refused with an HTTP status (and the fields at fault, if any)."""

    def __init__(self, status: int, message: str, fields: list[FieldProblem] | None = None):
        super().__init__(message)
        self.status = status
        self.fields = fields or []


@dataclass(frozen=True)
class Call:
    """One authenticated request: who made it, its parsed body, the server."""

    request: Request
    who: Identity | None
    body: BaseModel | None
    server: Server

    def param(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])

    @property
    def name(self) -> str:
        """The caller's token name (what decisions record)."""
        return self.who.name if self.who else "anonymous"


Handler = Callable[[Call], Awaitable[BaseModel | Response]]


@dataclass(frozen=True)
class Param:
    """A query or header parameter an endpoint reads (its handler parses it)."""

    name: str
    location: Literal["query", "header"]
    description: str
    pattern: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """One operation of the API.

    ``errors`` are the other status codes it answers with an ``ErrorBody``; ``replies``
    those it answers with another model (readiness: 503 with a ``Health``).
    """

    method: str
    path: str
    handler: Handler
    permission: Permission | None  # None: open (health checks)
    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    media: str = "application/json"
    params: tuple[Param, ...] = ()
    replies: tuple[tuple[int, type[BaseModel]], ...] = ()


def error(
    status: int,
    message: str,
    fields: list[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response (with ``headers``, and a challenge for a 401)."""
    body = ErrorBody(error=message, fields=fields or [])
    sent = dict(headers or {})
    if status == 401:
        sent["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=sent)


def _identity(server: Server, request: Request) -> Identity | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return server.tokens.authenticate(token.strip())


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused (413) past ``limit`` bytes whatever Content-Length says."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _problems(exc: ValidationError) -> list[FieldProblem]:
    return [
        FieldProblem(field=".".join(str(p) for p in e["loc"]) or "(body)", message=e["msg"])
        for e in exc.errors(include_url=False, include_input=False)
    ]


async def parse(model: type[BaseModel], request: Request) -> BaseModel:
    """The body parsed as ``model`` (ApiError 415/422 naming what is wrong)."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if kind != "application/json":
        raise ApiError(415, f"the body must be application/json, not {kind!r}")
    raw = await read_body(request)
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise ApiError(422, "the request body is not valid", _problems(exc)) from None


def _serving(endpoint: Endpoint, server: Server) -> Callable[[Request], Awaitable[Response]]:
    """The request handler of ``endpoint``: authenticate, parse, call, serialise."""

    async def serve(request: Request) -> Response:
        who = None
        if endpoint.permission is not None:
            try:
                who = _identity(server, request)
            except TokenFileError as exc:  # refused: no token is accepted from it
                log.error("%s", exc)
                return error(503, "the server's tokens file is not usable; see its log")
            if who is None:
                return error(401, "a valid bearer token is needed")
            if not allows(who.role, endpoint.permission):
                return error(403, f"role {who.role} may not {endpoint.permission.value}")
        try:
            body = await parse(endpoint.body, request) if endpoint.body else None
            result = await endpoint.handler(Call(request, who, body, server))
        except ApiError as exc:
            return error(exc.status, str(exc), exc.fields)
        if isinstance(result, Response):
            return result
        return JSONResponse(result.model_dump(mode="json"), status_code=endpoint.status)

    return serve


def route(endpoint: Endpoint, server: Server) -> Route:
    """The starlette route serving ``endpoint`` alone."""
    serve = _serving(endpoint, server)
    return Route(endpoint.path, serve, methods=[endpoint.method], name=endpoint.summary)


def routes(endpoints: tuple[Endpoint, ...], server: Server) -> list[Route]:
    """One route per path, serving each method of it.

    So that another method gets 405 with an ``Allow`` header naming every method of the
    path (a route per endpoint would name only the first route's).
    """
    paths: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method] = _serving(endpoint, server)
    found = []
    for path, methods in paths.items():

        async def dispatch(
            request: Request, methods: dict[str, Callable[[Request], Awaitable[Response]]] = methods
        ) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await methods[method](request)

        found.append(Route(path, dispatch, methods=list(methods), name=path))
    return found


def json_text(value: Any) -> str:
    """Compact JSON (for event streams)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)

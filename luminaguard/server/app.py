"""The starlette application: every endpoint, the event stream, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from luminaguard.server import api_approvals, api_gitops, api_questions, api_retry, api_runs, page
from luminaguard.server.http import ApiError, Call, Endpoint, Param, error, json_text, routes
from luminaguard.server.metrics import CONTENT_TYPE
from luminaguard.server.models import Health
from luminaguard.server.service import Server
from luminaguard.server.tokens import Permission

#: An event id, as ``Last-Event-ID`` (or ``after``) gives it.
EVENT_ID = r"^[0-9]{1,18}$"
#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE = 15.0


async def healthz(call: Call) -> BaseModel:
    """The process answers."""
    return Health(status="ok")


async def readyz(call: Call) -> BaseModel | Response:
    """Runs left running were resumed, and the state folder is watched."""
    if call.server.ready:
        return Health(status="ready")
    body = Health(status="not ready", detail="starting, stopping, or not watching the state")
    return JSONResponse(body.model_dump(), status_code=503)


async def metrics(call: Call) -> Response:
    """Prometheus exposition."""
    return Response(call.server.metrics.render(), media_type=CONTENT_TYPE)


def _after(request: Request) -> int | None:
    text = request.headers.get("last-event-id") or request.query_params.get("after")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ApiError(422, "Last-Event-ID (or after) must be an event id")
    return int(text)


async def events(call: Call) -> Response:
    """Server-Sent Events: each step, approval and run change, as it is recorded."""
    after = _after(call.request)
    hub = call.server.hub
    if hub.closed:
        raise ApiError(503, "the server is stopping")
    if after is None:  # from now: what is recorded before the stream starts is sent too
        after = hub.last

    async def stream() -> AsyncIterator[str]:
        yield ": luminaguard events\n\n"
        async for event in hub.subscribe(after, idle=KEEPALIVE):
            if event is None:  # a comment, so that proxies keep an idle stream open
                yield ": keep-alive\n\n"
                continue
            body = json_text(event.as_json())
            yield f"id: {event.id}\nevent: {event.kind}\ndata: {body}\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/healthz", healthz, None, "liveness", response=Health),
    Endpoint(
        "GET", "/readyz", readyz, None, "readiness", response=Health, replies=((503, Health),)
    ),
    Endpoint("GET", "/metrics", metrics, Permission.READ, "Prometheus metrics", media="text/plain"),
    Endpoint(
        "GET",
        "/v1/events",
        events,
        Permission.READ,
        "stream of changes (Server-Sent Events)",
        errors=(422,),
        media="text/event-stream",
        params=(
            Param("Last-Event-ID", "header", "resume after this event id", EVENT_ID),
            Param("after", "query", "resume after this event id (without the header)", EVENT_ID),
        ),
    ),
    *api_runs.ENDPOINTS,
    *api_retry.ENDPOINTS,
    *api_approvals.ENDPOINTS,
    *api_questions.ENDPOINTS,
    *api_gitops.ENDPOINTS,
)


def build_app(server: Server) -> Starlette:
    """The application serving ``server``'s state folder (and the approval page)."""

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, "no such endpoint")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error(405, "method not allowed", headers=getattr(exc, "headers", None))

    return Starlette(
        routes=[*page.ROUTES, *routes(ENDPOINTS, server)],
        exception_handlers={404: not_found, 405: not_allowed},
    )

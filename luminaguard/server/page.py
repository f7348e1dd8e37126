"""The approval page: plain files shipped with the package, served at ``/`` and ``/static/``.

The page holds no data (it asks the API for it with the token the person enters), so it
is served without a token. Every response carries a strict Content-Security-Policy:
scripts and styles from this origin only (no inline script, no ``eval``), requests to
this origin only, no framing. These routes are not API operations: they are left out
of ``ENDPOINTS`` and so of the OpenAPI document.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

#: The page's files, by name, and their media types (nothing else is served).
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
    " img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def content(name: str) -> bytes:
    """One of the page's files as shipped."""
    return resources.files("luminaguard.server").joinpath("static", name).read_bytes()


def _file(name: str) -> Response:
    if name not in FILES:
        return Response(b"no such file\n", 404, headers=HEADERS, media_type="text/plain")
    return Response(content(name), headers=HEADERS, media_type=FILES[name])


async def index(request: Request) -> Response:
    """The page."""
    return _file("index.html")


async def static(request: Request) -> Response:
    """The page's script and style sheet."""
    return _file(str(request.path_params["name"]))


ROUTES = [
    Route("/", index, methods=["GET"], name="page"),
    Route("/static/{name}", static, methods=["GET"], name="page files"),
]

"""The non-text contents of a tool result -- images, audio, embedded resources -- decoded.

Everything here comes from the server: base64 is decoded strictly (an item that is not
valid base64 is dropped, with the reason), an item over ``ITEM_CAP`` is dropped before
it is decoded, a MIME type is kept only when it looks like one, and a resource's
``uri`` is data (kept, cut short) -- never fetched, never used as a path.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import mcp_types as types

from luminaguard.transport.base import Content

#: The largest item kept, decoded (bytes).
ITEM_CAP = 16 << 20
_URI_LIMIT = 2048
_MIME = re.compile(r"[a-z0-9][a-z0-9.+-]{0,62}/[a-z0-9][a-z0-9.+-]{0,62}")
OCTETS = "application/octet-stream"


def mime_type(value: str | None, default: str = OCTETS) -> str:
    """The server's MIME type, lower-cased, parameters cut; ``default`` if it is not one."""
    kind = (value or "").split(";", 1)[0].strip().lower()
    return kind if _MIME.fullmatch(kind) else default


def _uri(value: Any) -> str:
    return str(value)[:_URI_LIMIT]


def decoded(kind: str, mime: str, data: str, uri: str | None = None) -> Content:
    """The item with its base64 ``data`` decoded; dropped when too large or not base64."""
    if len(data) > (ITEM_CAP + 2) // 3 * 4:
        return Content(kind, mime, uri=uri, dropped=f"over the {ITEM_CAP >> 20} MiB cap per item")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return Content(kind, mime, uri=uri, dropped="not valid base64")
    return Content(kind, mime, raw, uri)


def _resource(resource: types.TextResourceContents | types.BlobResourceContents) -> Content:
    uri = _uri(resource.uri)
    if isinstance(resource, types.BlobResourceContents):
        return decoded("resource", mime_type(resource.mime_type), resource.blob, uri)
    raw = resource.text.encode("utf-8", "replace")
    mime = mime_type(resource.mime_type, "text/plain")
    if len(raw) > ITEM_CAP:
        return Content("resource", mime, uri=uri, dropped=f"over the {ITEM_CAP >> 20} MiB cap")
    return Content("resource", mime, raw, uri)


def content(block: Any) -> Content | None:
    """The block as a Content; None for text (kept as the result's text) and the unknown."""
    if isinstance(block, types.ImageContent | types.AudioContent):
        return decoded(block.type, mime_type(block.mime_type), block.data)
    if isinstance(block, types.EmbeddedResource):
        return _resource(block.resource)
    if isinstance(block, types.ResourceLink):
        mime = mime_type(block.mime_type)
        return Content("link", mime, uri=_uri(block.uri), dropped="a link: never fetched")
    return None

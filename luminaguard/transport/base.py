"""The transport layer's contract: list a server's tools, call one, close.

Routing, retries of whole steps and risk live above this layer: the scheduler
decides what to call and the policy engine decides whether it may.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from luminaguard.errors import LuminaGuardError

#: MCP's annotation hints, in the spelling of the protocol.
HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")


class TransportError(LuminaGuardError):
    """A server could not be reached, started, or answered with a protocol error."""


def digest(value: Any) -> str:
    """SHA-256 of a value's canonical JSON."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ToolInfo:
    """One tool as a server describes it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, bool] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        """What the lock pins: annotations as given, hashes of description and schema."""
        return {
            "annotations": dict(sorted(self.annotations.items())),
            "description_sha256": digest(self.description),
            "input_schema_sha256": digest(self.input_schema),
        }


@dataclass(frozen=True)
class Content:
    """A non-text item of a tool result (``transport.contents``): bytes, or why not kept."""

    kind: str  # image, audio, resource, link
    mime: str
    data: bytes = b""
    uri: str | None = None
    dropped: str | None = None


@dataclass(frozen=True)
class ToolResult:
    """A tool call's outcome, as step outputs: text, structured content, is_error."""

    text: str
    structured: Any = None
    is_error: bool = False
    #: images, audio, resources: the scheduler saves them as files
    contents: tuple[Content, ...] = ()

    def outputs(self) -> dict[str, Any]:
        """The step outputs later steps may use."""
        return {"text": self.text, "structured": self.structured, "is_error": self.is_error}


class ToolClient(Protocol):
    """A connection to one MCP server."""

    async def list_tools(self) -> list[ToolInfo]:
        """Every tool the server offers."""
        ...

    async def call_tool(
        self, name: str, arguments: dict[str, Any], timeout: float, idempotent: bool = False
    ) -> ToolResult:
        """Call one tool and wait for its result; ``idempotent`` allows a transport to retry."""
        ...

    async def aclose(self) -> None:
        """End the session and stop or disconnect from the server."""
        ...

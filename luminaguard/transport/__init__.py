"""The transport layer: MCP over stdio (inside the sandbox) and over HTTP."""

from __future__ import annotations

from luminaguard.transport.base import ToolClient, ToolInfo, ToolResult, TransportError

__all__ = ["ToolClient", "ToolInfo", "ToolResult", "TransportError"]

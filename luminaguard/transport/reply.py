"""What a person answered to a server's question: accept with content, decline, cancel.

Kept apart from ``questions`` (which needs the MCP SDK) so that the run store and the
commands that only read answers do not import the SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from luminaguard.transport.forms import Value

Action = Literal["accept", "decline", "cancel"]


@dataclass(frozen=True)
class Reply:
    """What a person (or the timeout) answered: accept with content, decline, cancel."""

    action: Action
    content: dict[str, Value] | None = None

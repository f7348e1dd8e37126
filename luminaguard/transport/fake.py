"""``FakeToolClient``: a ``ToolClient`` for tests. No server, no process; calls are recorded.

It lists the tools it is given and answers each call with what the test scripted for
that tool (``on``): a ``ToolResult``, a function of the arguments, or a
``TransportError`` to raise. A tool nothing is scripted for raises a TransportError,
as a server that answers outside the protocol would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from luminaguard.transport.base import ToolInfo, ToolResult, TransportError

#: What a scripted tool answers: a result, a result made from the arguments, or an error.
Answer = ToolResult | Callable[[dict[str, Any]], ToolResult] | TransportError


@dataclass(frozen=True)
class ToolCall:
    """One ``call_tool`` the client received."""

    name: str
    arguments: dict[str, Any]
    timeout: float
    idempotent: bool


class FakeToolClient:
    """A ``ToolClient`` for tests; see the module's docstring."""

    def __init__(self, tools: Iterable[ToolInfo] = (), name: str = "fake") -> None:
        self.name = name
        self.tools = list(tools)
        self.calls: list[ToolCall] = []
        self.listed = 0  # how many times list_tools was called
        self.closed = False
        self._answers: dict[str, list[tuple[Answer, int | None]]] = {}

    def on(self, tool: str, answer: Answer, times: int | None = None) -> None:
        """Answer calls of ``tool`` with ``answer``; ``times`` limits how often it does.

        Answers for one tool are used in the order they were scripted.
        """
        self._answers.setdefault(tool, []).append((answer, times))

    def _check_open(self) -> None:
        if self.closed:
            raise TransportError(f"MCP server {self.name!r}: the session is closed")

    async def list_tools(self) -> list[ToolInfo]:
        """The tools given at construction."""
        self._check_open()
        self.listed += 1
        return list(self.tools)

    def _answer(self, tool: str) -> Answer | None:
        queue = self._answers.get(tool, [])
        while queue:
            answer, times = queue[0]
            if times is None:
                return answer
            if times > 1:
                queue[0] = (answer, times - 1)
            else:
                queue.pop(0)
            if times > 0:
                return answer
        return None

    async def call_tool(
        self, name: str, arguments: dict[str, Any], timeout: float, idempotent: bool = False
    ) -> ToolResult:
        """Record the call; the scripted answer (raised when it is an error)."""
        self._check_open()
        self.calls.append(ToolCall(name, dict(arguments), timeout, idempotent))
        answer = self._answer(name)
        if answer is None:
            raise TransportError(f"MCP server {self.name!r}: nothing scripted for tool {name!r}")
        if isinstance(answer, TransportError):
            raise answer
        return answer(arguments) if callable(answer) else answer

    async def aclose(self) -> None:
        """End the fake session; later calls raise TransportError."""
        self.closed = True

"""The fake tool client: scripted answers, recorded calls, a closed session."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from luminaguard.transport.base import ToolInfo, ToolResult, TransportError
from luminaguard.transport.fake import FakeToolClient, ToolCall

TOOL = ToolInfo("t", "a tool", {"type": "object"})


def test_answers_in_the_order_scripted_and_records_calls() -> None:
    async def go() -> tuple[list[str], FakeToolClient]:
        client = FakeToolClient([TOOL], name="a/s")
        client.on("t", ToolResult("first"), times=1)
        client.on("t", lambda arguments: ToolResult(str(arguments["n"])))
        assert await client.list_tools() == [TOOL]
        texts = [(await client.call_tool("t", {"n": n}, 2.0, n == 1)).text for n in range(3)]
        return texts, client

    texts, client = asyncio.run(go())
    assert texts == ["first", "1", "2"]
    assert client.calls[1] == ToolCall("t", {"n": 1}, 2.0, True)
    assert client.listed == 1


def test_errors_unscripted_tools_and_a_closed_session_raise() -> None:
    async def go() -> None:
        client = FakeToolClient(name="a/s")
        client.on("down", TransportError("went away"))
        with pytest.raises(TransportError, match="went away"):
            await client.call_tool("down", {}, 1.0)
        with pytest.raises(TransportError, match="nothing scripted for tool 'other'"):
            await client.call_tool("other", {}, 1.0)
        await client.aclose()
        calls: list[Any] = [client.list_tools(), client.call_tool("down", {}, 1.0)]
        for call in calls:
            with pytest.raises(TransportError, match="closed"):
                await call

    asyncio.run(go())

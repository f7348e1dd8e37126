"""mcp_http against a real MCP server over Streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from luminaguard.scheduler.store import RunStore
from luminaguard.transport.base import TransportError
from luminaguard.transport.mcp_http import RetryPolicy, http_client
from tests.conftest import CliRunner, Writer
from tests.integration.http_server import (
    PDF,
    PNG,
    DroppingProxy,
    LiveServer,
    Seen,
    closed_port_url,
)

TOKEN = "Bearer s3cret-9d8c7b6a"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, cooldown=60, timeout=10, window=0.1)


@pytest.fixture
def live() -> Iterator[LiveServer]:
    with LiveServer() as server:
        yield server


async def call(
    urls: list[str], tool: str, args: dict[str, object], idempotent: bool = False
) -> str:
    client = await http_client("t", urls, {"Authorization": TOKEN}, FAST)
    try:
        return (await client.call_tool(tool, args, 10, idempotent)).text
    finally:
        await client.aclose()


def test_lists_tools_with_annotations_and_sends_the_auth_header(live: LiveServer) -> None:
    async def go() -> list[str]:
        client = await http_client("t", [live.url], {"Authorization": TOKEN}, FAST)
        tools = await client.list_tools()
        await client.aclose()
        return [f"{t.name}:{t.annotations.get('readOnlyHint')}" for t in tools]

    assert sorted(asyncio.run(go())) == [
        "bump:False",
        "echo:True",
        "hang:False",
        "media:True",
        "set_value:False",
        "whoami:True",
    ]
    assert live.seen.authorization and set(live.seen.authorization) == {TOKEN}


def test_call_and_result(live: LiveServer) -> None:
    assert asyncio.run(call([live.url], "echo", {"text": "hi"})) == "hi"


def test_an_idempotent_call_is_retried_after_a_dropped_connection(live: LiveServer) -> None:
    with DroppingProxy(live.port) as proxy:
        proxy.drop_calls = 1
        assert (
            asyncio.run(call([proxy.url], "set_value", {"key": "k", "value": "v"}, idempotent=True))
            == "k=v"
        )
        assert proxy.dropped == 1
    assert live.seen.calls == ["set_value"]  # the dropped attempt never reached the server


def test_a_non_idempotent_call_is_not_retried(live: LiveServer) -> None:
    with DroppingProxy(live.port) as proxy:
        proxy.drop_calls = 1
        with pytest.raises(TransportError, match="not retried, as it may have taken effect"):
            asyncio.run(call([proxy.url], "bump", {}))
        assert proxy.dropped == 1
    assert live.seen.calls == []


def test_failover_to_a_second_endpoint(live: LiveServer) -> None:
    async def go() -> tuple[str, list[float]]:
        client = await http_client(
            "t", [closed_port_url(), live.url], {"Authorization": TOKEN}, FAST
        )
        text = (await client.call_tool("bump", {}, 10)).text  # never sent to the dead one: safe
        health = [e.unhealthy_until for e in client.endpoints]
        await client.aclose()
        return text, health

    text, health = asyncio.run(go())
    assert text == "1" and live.seen.calls == ["bump"]
    assert health[0] > time.monotonic() and health[1] == 0


def test_round_robin_between_healthy_endpoints() -> None:
    with LiveServer() as first, LiveServer() as second:

        async def go() -> None:
            client = await http_client("t", [first.url, second.url], {}, FAST)
            for _ in range(4):
                await client.call_tool("echo", {"text": "x"}, 10)
            await client.aclose()

        asyncio.run(go())
        assert first.seen.calls == ["echo", "echo"] and second.seen.calls == ["echo", "echo"]


def test_every_endpoint_down_is_a_clear_error() -> None:
    with pytest.raises(
        TransportError,
        match=r"every endpoint failed \(retried for 0.1s\): cannot connect to http://127\.0\.0\.1",
    ):
        asyncio.run(call([closed_port_url(), closed_port_url()], "echo", {"text": "x"}))


def test_the_token_never_reaches_logs_or_errors(
    live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with DroppingProxy(live.port) as proxy:
        proxy.drop_calls = 1
        with pytest.raises(TransportError) as caught:
            asyncio.run(call([proxy.url], "bump", {}))
        asyncio.run(
            call([proxy.url, closed_port_url()], "set_value", {"key": "a", "value": "b"}, True)
        )
    assert "s3cret" not in caplog.text and "s3cret" not in str(caught.value)


def test_secret_header_absent_from_audit_through_a_run(
    live: LiveServer, cli: CliRunner, write: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LG_HTTP_TOKEN", TOKEN)
    workload = f"""\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {{name: p}}
spec:
  rules: [{{id: all, match: {{server: remote}}, risk: green, reason: test server}}]
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {{name: a}}
spec:
  policy: p
  mcp_servers:
    remote:
      urls: [{closed_port_url()}, {live.url}]
      headers: {{Authorization: {{from_env: LG_HTTP_TOKEN}}}}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {{name: w}}
spec:
  steps:
    - {{id: who, agent: a, call: remote.whoami}}
"""
    state = tmp_path / "s"
    result = cli("run", str(write("w.yaml", workload)), "--state", str(state), "--run-id", "r")
    assert result.code == 0, result.out + result.err
    store = RunStore(state)
    assert store.steps("r")["who"].outputs["text"] == "***"  # the server echoed the token back
    raw = (state / "runs.db").read_bytes() + b"".join(
        p.read_bytes() for p in state.glob("runs.db-*")
    )
    assert b"s3cret" not in raw
    assert live.seen.authorization[-1] == TOKEN


async def until(condition: Callable[[], bool], call: asyncio.Task[Any]) -> None:
    """Wait (polling) until ``condition()`` holds; fail if the call ended first."""
    while not condition():
        if call.done():
            raise AssertionError(f"the call ended first: {call.result()!r}")
        await asyncio.sleep(0.01)


def test_an_idempotent_call_outlasts_a_server_restart(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "luminaguard.transport.mcp_http")
    seen = Seen()
    first = LiveServer(seen).__enter__()
    policy = RetryPolicy(attempts=2, base_delay=0.05, max_delay=0.5, timeout=10, window=60)

    async def go() -> str:
        client = await http_client("t", [first.url], {}, policy)
        call = asyncio.create_task(client.call_tool("hang", {"key": "k"}, 30, idempotent=True))
        try:
            await until(lambda: seen.calls == ["hang"], call)
            await asyncio.to_thread(first.__exit__)  # killed during the call
            await until(lambda: "cannot connect" in caplog.text, call)  # and down for a while
            second = await asyncio.to_thread(LiveServer(seen, first.port).__enter__)
            try:
                return (await call).text
            finally:
                await asyncio.to_thread(second.__exit__)
        finally:
            await client.aclose()

    assert asyncio.run(go()) == "hung k"
    assert seen.calls == ["hang", "hang"]


def test_a_session_the_restarted_server_forgot_is_opened_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "luminaguard.transport.mcp_http")
    seen = Seen()
    first = LiveServer(seen).__enter__()

    async def go() -> list[str]:
        client = await http_client("t", [first.url], {}, FAST)
        try:
            before = (await client.call_tool("bump", {}, 10)).text
            await asyncio.to_thread(first.__exit__)  # restarted between two calls
            with LiveServer(seen, first.port):
                return [before, (await client.call_tool("bump", {}, 10)).text]
        finally:
            await client.aclose()

    # not idempotent, yet sent again: the server refused it for the session (HTTP 404)
    assert asyncio.run(go()) == ["1", "1"]
    assert seen.calls == ["bump", "bump"]
    assert "HTTP 404, session unknown; opening a new session" in caplog.text


def test_the_default_retry_window_spans_seconds() -> None:
    assert RetryPolicy().window >= 3


def test_images_and_resources_become_private_files(
    live: LiveServer, cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    workload = f"""\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {{name: p}}
spec:
  rules: [{{id: all, match: {{server: remote}}, risk: green, reason: test server}}]
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {{name: a}}
spec:
  policy: p
  mcp_servers: {{remote: {{url: {live.url}}}}}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {{name: w}}
spec:
  steps:
    - {{id: m, agent: a, call: remote.media}}
"""
    state = tmp_path / "s"
    result = cli("run", str(write("w.yaml", workload)), "--state", str(state), "--run-id", "r")
    assert result.code == 0, result.out + result.err
    outputs = RunStore(state).steps("r")["m"].outputs
    assert outputs["text"] == "here"
    png, pdf, sh = (hashlib.sha256(data).hexdigest() for data in (PNG, PDF, b"hi"))
    assert outputs["files"] == [
        {"path": f"steps/m/outputs/{png}.png", "sha256": png, "mime": "image/png", "size": 264},
        {
            "path": f"steps/m/outputs/{pdf}.pdf",
            "sha256": pdf,
            "mime": "application/pdf",
            "size": len(PDF),
            "uri": "file:///etc/passwd",  # data, never read
        },
        {
            "path": f"steps/m/outputs/{sh}.bin",  # not an allowed type: no extension of its own
            "sha256": sh,
            "mime": "text/x-sh",
            "size": 2,
            "uri": "file:///../../x.sh",
        },
    ]
    assert [(d["kind"], d["reason"]) for d in outputs["dropped"]] == [
        ("image", "not valid base64"),
        ("link", "a link: never fetched"),
    ]
    run = state / "runs" / "r"
    assert (run / outputs["files"][0]["path"]).read_bytes() == PNG
    assert (run / outputs["files"][1]["path"]).read_bytes() == PDF
    for path in [run / "steps", run / "steps/m", run / "steps/m/outputs"]:
        assert path.stat().st_mode & 0o777 == 0o700, path
    for entry in outputs["files"]:
        assert (run / entry["path"]).stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (run / "steps/m/outputs").iterdir()) == sorted(
        Path(entry["path"]).name for entry in outputs["files"]
    )


def test_an_answer_over_the_cap_is_refused_unread(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile server's huge answer is read up to MAX_RESPONSE, no further."""
    from luminaguard.transport import mcp_http

    assert asyncio.run(call([live.url], "echo", {"text": "x" * 4096})) == "x" * 4096
    monkeypatch.setattr(mcp_http, "MAX_RESPONSE", 4096)
    with pytest.raises(TransportError, match="the answer is over"):
        asyncio.run(call([live.url], "echo", {"text": "x" * 8192}))

"""The guest agent and its host side, talking the framed protocol over a real byte stream."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import json
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from luminaguard.hypervisor.vm.guest.client import GuestAgent, GuestError
from luminaguard.hypervisor.vm.guest.protocol import (
    MAX_FRAME,
    ProtocolError,
    decode,
    encode,
    frame_length,
)
from tests.conftest import ROOT

AGENT = ROOT / "luminaguard" / "hypervisor" / "vm" / "guest" / "agent" / "luminaguard_agent.py"


@asynccontextmanager
async def agent(workdir: Path) -> AsyncIterator[tuple[GuestAgent, asyncio.subprocess.Process]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(AGENT), "--workdir", str(workdir),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    client = GuestAgent(process.stdout, process.stdin)
    try:
        yield client, process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def run(workdir: Path, scenario: Callable[[GuestAgent], Awaitable[object]]) -> object:
    async def go() -> object:
        async with agent(workdir) as (client, _):
            return await scenario(client)

    return asyncio.run(go())


def test_hello(tmp_path: Path) -> None:
    hello = run(tmp_path, lambda a: a.hello())
    assert hello["version"] == 1 and hello["workdir"] == str(tmp_path)  # type: ignore[index]


def test_exec_returns_exit_code_and_output(tmp_path: Path) -> None:
    result = run(tmp_path, lambda a: a.exec("echo out; echo err >&2; pwd; exit 3", 10))
    assert (result.exit_code, result.stderr) == (3, "err\n")  # type: ignore[attr-defined]
    assert result.stdout == f"out\n{tmp_path}\n"  # type: ignore[attr-defined]


def test_exec_timeout_kills_the_process_group(tmp_path: Path) -> None:
    result = run(tmp_path, lambda a: a.exec("sleep 30 & sleep 30; echo never", 0.5))
    assert result.timed_out and "never" not in result.stdout and result.duration < 5  # type: ignore[attr-defined]


def test_exec_memory_limit(tmp_path: Path) -> None:
    hog = "python3 -c 'x = bytearray(400 * 1024 * 1024)'"
    result = run(tmp_path, lambda a: a.exec(hog, 20, memory_mib=128))
    assert result.exit_code != 0 and "MemoryError" in result.stderr  # type: ignore[attr-defined]


def test_put_and_get(tmp_path: Path) -> None:
    async def scenario(a: GuestAgent) -> bytes:
        assert await a.put("dir/file.bin", b"\x00\x01data") == 6
        return await a.get("dir/file.bin")

    assert run(tmp_path, scenario) == b"\x00\x01data"
    assert (tmp_path / "dir" / "file.bin").read_bytes() == b"\x00\x01data"


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b"])
def test_paths_may_not_leave_the_work_folder(tmp_path: Path, path: str) -> None:
    with pytest.raises(GuestError, match="leaves the work folder"):
        run(tmp_path / "work", lambda a: a.put(path, b"x"))


def test_unknown_operation_and_version_are_refused(tmp_path: Path) -> None:
    with pytest.raises(GuestError, match="unknown operation 'format_disk'"):
        run(tmp_path, lambda a: a.request("format_disk"))

    async def old_version(a: GuestAgent) -> None:
        a.writer.write(encode({"v": 0, "id": 99, "op": "hello"}))
        await a.writer.drain()
        body = await asyncio.wait_for(
            a.reader.readexactly(frame_length(await a.reader.readexactly(4))), 5
        )
        message = decode(body)
        assert message["ok"] is False and "protocol version 0 not spoken" in message["error"]

    async def go() -> None:
        async with agent(tmp_path) as (client, _):
            client._pump.cancel()  # read the raw answer ourselves
            await asyncio.sleep(0)
            await old_version(client)

    asyncio.run(go())


def test_requests_are_served_concurrently(tmp_path: Path) -> None:
    async def scenario(a: GuestAgent) -> list[str]:
        order: list[str] = []

        async def slow() -> None:
            await a.exec("sleep 1", 10)
            order.append("exec")

        async def quick() -> None:
            await asyncio.sleep(0.2)
            await a.hello()
            order.append("hello")

        await asyncio.gather(slow(), quick())
        return order

    assert run(tmp_path, scenario) == ["hello", "exec"]


def test_a_dead_agent_fails_pending_requests(tmp_path: Path) -> None:
    async def go() -> None:
        async with agent(tmp_path) as (client, process):
            pending = asyncio.ensure_future(client.exec("sleep 30", 60))
            await asyncio.sleep(0.3)
            process.kill()
            with pytest.raises(GuestError, match="stream ended"):
                await pending

    asyncio.run(go())


def test_a_stream_closed_before_the_request_fails_it_as_a_guest_error() -> None:
    # QEMU drops a connection made before the guest opens its port: the write may be the
    # first to see it, before the reader does; connect() retries on GuestError only
    async def go() -> None:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        client = GuestAgent(reader, writer)
        theirs.close()
        try:
            with pytest.raises(GuestError, match="stream ended"):
                await client.request("hello", wait=5)
            assert not client._waiting  # no orphaned waiter left to fail unheard
        finally:
            await client.aclose()

    asyncio.run(go())


def test_shutdown_ends_the_agent(tmp_path: Path) -> None:
    async def go() -> int:
        async with agent(tmp_path) as (client, process):
            await client.shutdown()
            return await asyncio.wait_for(process.wait(), 5)

    assert asyncio.run(go()) == 0


def test_frames() -> None:
    frame = encode({"v": 1, "id": 1, "op": "hello"})
    assert frame_length(frame[:4]) == len(frame) - 4
    assert decode(frame[4:]) == {"v": 1, "id": 1, "op": "hello"}
    with pytest.raises(ProtocolError):
        frame_length((MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(ProtocolError):
        decode(b"[1, 2]")
    with pytest.raises(ProtocolError):
        decode(b"not json")
    with pytest.raises(ProtocolError):
        encode({"data": "x" * (MAX_FRAME + 1)})


SERVER = ROOT / "mcp-servers" / "node_modules" / ".bin" / "mcp-server-filesystem"


def test_spawn_relays_a_process(tmp_path: Path) -> None:
    async def scenario(a: GuestAgent) -> tuple[bytes, int]:
        process = await a.spawn(
            ["/bin/sh", "-c", "read line; echo got:$line; echo oops >&2; exit 7"]
        )
        assert process.stdin is not None
        process.stdin.write(b"hello\n")
        await process.stdin.drain()
        out = await process.stdout.readline()
        return out, await process.wait()

    assert run(tmp_path, scenario) == (b"got:hello\n", 7)


def test_an_mcp_server_runs_unchanged_behind_the_guest_agent(tmp_path: Path) -> None:
    """The same mcp_stdio session, over the agent's relayed stream instead of a sandbox pipe."""
    import shutil

    from luminaguard.transport.mcp_stdio import stdio_client

    if shutil.which("node") is None or not SERVER.exists():
        pytest.skip("node or the npm MCP servers are missing: run `make mcp-servers`")
    (tmp_path / "note.txt").write_text("from inside")

    async def scenario(a: GuestAgent) -> tuple[list[str], str, bool]:
        client = stdio_client("fs", lambda: a.spawn([str(SERVER), str(tmp_path)]))
        await client.start(30)
        try:
            tools = [tool.name for tool in await client.list_tools()]
            read = await client.call_tool(
                "read_text_file", {"path": str(tmp_path / "note.txt")}, 10
            )
            denied = await client.call_tool("read_text_file", {"path": "/etc/hostname"}, 10)
        finally:
            await client.aclose()
        return tools, read.text, denied.is_error

    tools, text, denied = run(tmp_path, scenario)  # type: ignore[misc]
    assert "read_text_file" in tools and text == "from inside" and denied is True


def test_killing_a_spawned_process(tmp_path: Path) -> None:
    async def scenario(a: GuestAgent) -> int:
        process = await a.spawn(["/bin/sh", "-c", "sleep 30"])
        process.kill()
        return await asyncio.wait_for(process.wait(), 5)

    assert run(tmp_path, scenario) == -9


@pytest.mark.parametrize(
    "frame", [{"event": "exit", "stream": "x"}, {"id": [1], "ok": True}], ids=["stream", "id"]
)
def test_a_frame_of_the_wrong_shape_ends_the_stream_at_once(frame: dict[str, object]) -> None:
    async def go() -> None:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        client = GuestAgent(reader, writer)
        theirs.sendall(encode(frame))
        try:
            with pytest.raises(GuestError, match="stream ended"):
                await client.request("hello", wait=30)
        finally:
            theirs.close()
            await client.aclose()

    asyncio.run(asyncio.wait_for(go(), 10))


def test_a_result_that_is_not_an_object_is_a_guest_error() -> None:
    async def go() -> None:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        client = GuestAgent(reader, writer)
        theirs.sendall(encode({"id": 1, "ok": True, "result": [1, 2]}))
        try:
            with pytest.raises(GuestError, match="not an object"):
                await client.request("hello", wait=30)
        finally:
            theirs.close()
            await client.aclose()

    asyncio.run(asyncio.wait_for(go(), 10))


def _agent_module() -> Any:
    """The agent's program, imported as a module (it runs as a script in the guest)."""
    spec = importlib.util.spec_from_file_location("luminaguard_agent", AGENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _served(
    module: Any, tmp_path: Path, bodies: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[dict[str, Any]], list[str]]:
    """Serve ``bodies`` as frames; the answers, and the ops a thread was started for."""
    threaded: list[str] = []

    class Recorded:
        def __init__(self, target: Callable[..., None], args: tuple[Any, ...], daemon: bool):
            self.target, self.args = target, args
            request = args[0]
            threaded.append(str(request.get("op")) if isinstance(request, dict) else "?")

        def start(self) -> None:
            self.target(*self.args)  # at once, so the answers come in order

    monkeypatch.setattr(module.threading, "Thread", Recorded)
    frames = b"".join(len(body).to_bytes(4, "big") + body for body in bodies)
    written = io.BytesIO()
    module.Agent(io.BytesIO(frames), written, tmp_path).serve()
    out, answers = written.getvalue(), []
    while out:
        length = frame_length(out[:4])
        answers.append(decode(out[4 : 4 + length]))
        out = out[4 + length :]
    return answers, threaded


def test_hello_and_reseed_are_answered_without_starting_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMINAGUARD_MACHINE_ID", str(tmp_path / "machine-id"))
    reseed = {"entropy": base64.b64encode(b"x" * 64).decode(), "machine_id": "ab" * 16}
    requests = [
        {"v": 1, "id": 1, "op": "reseed", **reseed},
        {"v": 1, "id": 2, "op": "hello"},
        {"v": 1, "id": 3, "op": "put", "path": "f", "data": base64.b64encode(b"hi").decode()},
    ]
    bodies = [json.dumps(request).encode() for request in requests]
    answers, threaded = _served(_agent_module(), tmp_path, bodies, monkeypatch)
    assert [(a["id"], a["ok"]) for a in answers] == [(1, True), (2, True), (3, True)]
    assert threaded == ["put"]  # a restored clone's first answers start no thread
    assert (tmp_path / "machine-id").read_text() == "ab" * 16 + "\n"


def test_malformed_requests_are_answered_as_errors_and_serving_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = [
        b"not json",
        b"[" * 100_000 + b"]" * 100_000,  # too deep for the parser
        b"[1]",
        json.dumps({"v": 1, "id": 4, "op": ["hello"]}).encode(),  # an op that is no name
        json.dumps({"v": 1, "id": 5, "op": "hello"}).encode(),
    ]
    answers, _ = _served(_agent_module(), tmp_path, bodies, monkeypatch)
    assert [a["ok"] for a in answers] == [False, False, False, False, True]
    assert "a request is a JSON object" in answers[2]["error"]
    assert answers[3]["id"] == 4 and "unknown operation" in answers[3]["error"]

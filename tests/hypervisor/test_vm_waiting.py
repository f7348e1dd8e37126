"""Waiting for a VM to come up, without a VM: sockets and processes standing in for the VMM.

A socket file that exists while nothing listens on it is what a VMM leaves between its
``bind`` and its ``listen``; a ``sleep`` process is a VMM still running, ``true`` one
that has exited.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from luminaguard.hypervisor.base import BackendError, SandboxSpec
from luminaguard.hypervisor.vm import waiting
from luminaguard.hypervisor.vm.firecracker import backend as firecracker
from luminaguard.hypervisor.vm.firecracker.api import Body, Unreachable
from luminaguard.hypervisor.vm.guest.protocol import VERSION, decode, encode, frame_length
from luminaguard.hypervisor.vm.machine import Vm
from luminaguard.hypervisor.vm.waiting import BootTimeout, connect


@pytest.fixture
def exited() -> subprocess.Popen[bytes]:
    """A VMM that has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process


@pytest.fixture
def bound(tmp_path: Path) -> Iterator[socket.socket]:
    """``agent.sock`` bound, not listening: QEMU between creating the file and listening."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "agent.sock"))
    yield sock
    sock.close()


async def answer_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A guest agent that answers every request as ``hello`` does."""
    while header := await reader.read(4):
        request = decode(await reader.readexactly(frame_length(header)))
        result = {"version": VERSION, "pid": 1}
        writer.write(encode({"v": VERSION, "id": request["id"], "ok": True, "result": result}))
        await writer.drain()
    writer.close()


def test_a_refused_connection_while_the_vmm_runs_is_tried_again(
    tmp_path: Path,
    bound: socket.socket,
    running: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened = asyncio.open_unix_connection
    refused: list[str] = []

    async def refused_once(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await opened(path)
        except ConnectionRefusedError:  # the VMM listens only after this refusal
            refused.append(path)
            await asyncio.start_unix_server(answer_hello, sock=bound)
            raise

    monkeypatch.setattr(waiting.asyncio, "open_unix_connection", refused_once)

    async def go() -> dict[str, Any]:
        agent = await connect(tmp_path / "agent.sock", running, time.monotonic() + 30)
        try:
            return await agent.hello()
        finally:
            await agent.aclose()

    assert asyncio.run(go())["pid"] == 1
    assert refused == [str(tmp_path / "agent.sock")]


def test_a_vmm_that_never_listens_is_a_timeout_not_a_dead_vm(
    tmp_path: Path, bound: socket.socket, running: subprocess.Popen[bytes]
) -> None:
    started = time.monotonic()
    with pytest.raises(BootTimeout, match="the guest agent did not answer in time"):
        asyncio.run(connect(tmp_path / "agent.sock", running, started + 0.3))
    assert time.monotonic() - started >= 0.3  # tried until the deadline
    assert running.poll() is None


def test_a_vmm_that_exited_is_a_dead_vm_explained_by_its_log(
    tmp_path: Path, bound: socket.socket, exited: subprocess.Popen[bytes]
) -> None:
    (tmp_path / "qemu.log").write_text("qemu-system-x86_64: cannot set up guest memory\n")
    with pytest.raises(BackendError, match=r"stopped before .*cannot set up guest memory") as err:
        asyncio.run(connect(tmp_path / "agent.sock", exited, time.monotonic() + 30))
    assert not isinstance(err.value, BootTimeout)


def test_a_firecracker_request_refused_before_it_listens_is_sent_again(
    tmp_path: Path, running: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []

    async def unix_http(sock: Path, method: str, path: str, body: Body) -> tuple[int, Any]:
        sent.append(f"{method} {path}")
        if len(sent) < 3:
            raise Unreachable(f"cannot reach the Firecracker API at {sock}: refused")
        return 200, {"id": "vm", "state": "Not started"}

    monkeypatch.setattr(firecracker, "unix_http", unix_http)
    vm = Vm(SandboxSpec(name="f", workdir=tmp_path), tmp_path, process=running)
    api = firecracker._api(vm, time.monotonic() + 30)
    assert asyncio.run(api.describe())["state"] == "Not started"
    assert sent == ["GET /"] * 3

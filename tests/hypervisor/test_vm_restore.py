"""Restoring clones fast without a VM: the greeting, patience, QEMU's events, the state fd.

A clone's first request is its ``reseed`` (one request proves the agent and reseeds it);
an answer that comes late is awaited longer each time instead of being dropped and asked
again at a fixed wait; QEMU's ``MIGRATION`` events say when the state is loaded; QEMU
inherits the state file as a descriptor. Counts and values are asserted, never times.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from qemu.qmp import EventListener
from qemu.qmp.message import Message

from luminaguard.hypervisor.base import BackendError, SandboxSpec
from luminaguard.hypervisor.vm.guest.protocol import VERSION, decode, encode, frame_length
from luminaguard.hypervisor.vm.machine import Vm
from luminaguard.hypervisor.vm.qemu.command import launch
from luminaguard.hypervisor.vm.qemu.restore import loaded, reseed
from luminaguard.hypervisor.vm.waiting import Greeting, Patience, connect, hello


class FakeGuest:
    """A guest agent on ``agent.sock`` that ignores the first ``silent`` connections."""

    def __init__(self, silent: int = 0) -> None:
        self.silent = silent
        self.connections = 0
        self.ops: list[tuple[int, str]] = []  # (connection, op) of every request received

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer every request, except on the silent connections (read, never answered)."""
        self.connections += 1
        connection = self.connections
        while header := await reader.read(4):
            request = decode(await reader.readexactly(frame_length(header)))
            self.ops.append((connection, str(request["op"])))
            if connection <= self.silent:
                continue
            result = {"machine_id": request.get("machine_id", ""), "pid": 1}
            writer.write(encode({"v": VERSION, "id": request["id"], "ok": True, "result": result}))
            await writer.drain()
        writer.close()


async def _connect(
    tmp_path: Path,
    guest: FakeGuest,
    vmm: subprocess.Popen[bytes],
    greet: Greeting = hello,
    patience: Patience | None = None,
) -> list[str]:
    """Connect to ``guest`` as a restore or a boot does; the ops it received, in order."""
    server = await asyncio.start_unix_server(guest.serve, path=str(tmp_path / "agent.sock"))
    async with server:
        deadline = time.monotonic() + 60
        agent = await connect(tmp_path / "agent.sock", vmm, deadline, greet, patience)
        await agent.aclose()
    return [op for _, op in guest.ops]


def test_a_restored_clone_is_greeted_with_its_reseed_one_request_not_two(
    tmp_path: Path, running: subprocess.Popen[bytes]
) -> None:
    guest = FakeGuest()
    ops = asyncio.run(_connect(tmp_path, guest, running, greet=reseed))
    assert ops == ["reseed"]  # the reseed's answer proves the agent: no hello before it


def test_the_default_greeting_is_hello(tmp_path: Path, running: subprocess.Popen[bytes]) -> None:
    assert asyncio.run(_connect(tmp_path, FakeGuest(), running)) == ["hello"]


def test_an_unanswered_greeting_is_awaited_twice_as_long_the_next_time(
    tmp_path: Path, running: subprocess.Popen[bytes]
) -> None:
    guest, patience = FakeGuest(silent=2), Patience(0.05)
    ops = asyncio.run(_connect(tmp_path, guest, running, patience=patience))
    assert ops == ["hello"] * guest.connections and guest.connections >= 3
    assert patience.waits[:2] == [0.05, 0.1]  # each wait outlasted doubled the next
    assert all(b == 2 * a for a, b in zip(patience.waits, patience.waits[1:], strict=False))


def test_a_failure_before_the_wait_is_up_does_not_grow_the_patience() -> None:
    patience = Patience(0.5)
    patience.outlasted(0.01)  # refused or dropped at once: nothing was awaited
    assert patience.wait == 0.5 and patience.waits == []
    patience.outlasted(0.5)
    patience.outlasted(1.0)
    assert patience.wait == 2.0 and patience.waits == [0.5, 1.0]


async def _events(*statuses: str) -> EventListener:
    """A listener holding the MIGRATION events QEMU would send, in order."""
    listener = EventListener("MIGRATION")
    for status in statuses:
        await listener.put(Message({"event": "MIGRATION", "data": {"status": status}}))
    return listener


def test_the_state_is_loaded_when_qemu_says_completed(
    tmp_path: Path, running: subprocess.Popen[bytes]
) -> None:
    vm = Vm(SandboxSpec(name="r", workdir=tmp_path), tmp_path, process=running)

    async def go(*statuses: str) -> str:
        return await loaded(await _events(*statuses), vm, time.monotonic() + 60)

    assert asyncio.run(go("setup", "active", "completed")) == "completed"
    assert asyncio.run(go("setup", "failed")) == "failed"


def test_a_qemu_that_exits_while_loading_is_a_dead_vm(tmp_path: Path) -> None:
    exited = subprocess.Popen(["true"])
    exited.wait()
    (tmp_path / "qemu.log").write_text("qemu-system-x86_64: load of migration failed\n")
    vm = Vm(SandboxSpec(name="r", workdir=tmp_path), tmp_path, process=exited)

    async def go() -> str:
        return await loaded(await _events("setup"), vm, time.monotonic() + 60)

    with pytest.raises(BackendError, match="load of migration failed"):
        asyncio.run(go())


def test_qemu_inherits_the_state_file_read_only(tmp_path: Path) -> None:
    state = tmp_path / "x.state"
    state.write_bytes(b"device state")
    fd = os.open(state, os.O_RDONLY | os.O_CLOEXEC)
    probe = """
import os, sys
fd = int(sys.argv[1])
assert os.read(fd, 100) == b"device state"
try:
    os.write(fd, b"x")
except OSError:
    sys.exit(0)
sys.exit(3)
"""
    try:
        process = launch([sys.executable, "-c", probe, str(fd)], tmp_path, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert process.wait() == 0, (tmp_path / "qemu.log").read_text()
    assert state.read_bytes() == b"device state"

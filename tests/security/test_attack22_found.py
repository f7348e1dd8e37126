"""Attack round 22: the no-follow walk, the status pipe's first line, the zygotes' requests.

Each test performs one attack that got through and asserts that it no longer does:

1. the Python zygote told a malformed request why on the request's stderr with a bare
   ``os.write``: when the host had given up on that spawn first (cancelled: its pipe
   ends closed), the write failed (EPIPE) and the zygote died of it, and every sandbox
   with it;
2. the Python zygote took each request with ``recv_fds(sock, 1 MiB, 4)`` and never
   looked whether it was whole: on a host whose socket buffers let a larger request
   through (``net.core.wmem_default`` above 1 MiB; here ``SO_SNDBUFFORCE``) the request
   was cut at 1 MiB and either run cut short (a command's last argument ending
   elsewhere) or, cut inside a UTF-8 character, killed the zygote (UnicodeDecodeError).
   The compiled zygote drops such a request (MSG_TRUNC) and serves on;
3. a spawn cancelled before the zygote answered read the status pipe (nothing yet), then
   closed it: a ``pid N`` written in between (the runner's thread descheduled a moment,
   the zygote busy with the requests before) was lost with the pipe, the zygote's write
   having succeeded, and the sandbox ran on, watched and killed by nobody (without
   cgroups: until the zygote stops, whatever its timeout);
4. a status pipe at its end after ``pid N`` (the zygote died before PID 1 ended: PID 1,
   killed with it, is reaped by another and its number is free) still had its pid taken
   for PID 1's: a pidfd of whichever process took the number, killed on timeout or cancel;
5. an approval card's diff read the written path beneath its view and knew NUL and
   ``..``, not a lone surrogate (a tool call's ``"\\ud800"``, an earlier step's output
   from an MCP server's JSON): ``os.fsencode`` raised UnicodeEncodeError out of
   ``read_beneath``, past ``file_diff``, and the step's task crashed, and with it the
   run (every other step cancelled) instead of the card saying the file is unreadable.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.sandbox import native, zygote
from tests.integration.conftest import sandbox_problem
from tests.security.conftest import Looping

SO_SNDBUFFORCE = 32


@pytest.fixture(params=["compiled", "python"])
def started(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[socket.socket, subprocess.Popen[bytes]]]:
    """A zygote of each kind on a socket of ours, as ``Zygote`` starts it."""
    if sandbox_problem():
        pytest.skip(sandbox_problem() or "")
    if request.param == "python":
        monkeypatch.setattr(native, "program", lambda: None)
    elif native.program() is None:
        pytest.skip(f"no compiled sandbox zygote: {native.reason()}")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    process = subprocess.Popen(
        zygote.command(theirs.fileno()), pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL
    )
    theirs.close()
    try:
        yield ours, process
    finally:
        ours.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _send(sock: socket.socket, request: bytes, close_stderr: bool = False) -> int:
    """Send ``request`` with four fresh pipes; the read end of its status pipe."""
    pipes = [os.pipe() for _ in range(4)]
    theirs = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]]
    ours = [pipes[0][1], pipes[1][0], pipes[2][0]]
    if close_stderr:  # the host gave up on this spawn before the zygote read it
        os.close(pipes[2][0])
        ours.remove(pipes[2][0])
    try:
        socket.send_fds(sock, [request], theirs)
    finally:
        for fd in (*theirs, *ours):
            os.close(fd)
    return pipes[3][0]


def _status(fd: int) -> bytes:
    """Everything written on a status pipe until its end (or 10 s)."""
    out = b""
    try:
        while select.select([fd], [], [], 10)[0]:
            chunk = os.read(fd, 512)
            if not chunk:
                break
            out += chunk
    finally:
        os.close(fd)
    return out


def _serves(sock: socket.socket, process: subprocess.Popen[bytes]) -> bool:
    """Whether the zygote still answers: a request with no command fails, reported."""
    if process.poll() is not None:
        return False
    try:
        status = _send(sock, b"workdir=/tmp\0root=/tmp\0--")
    except OSError:
        return False
    return _status(status) == b"exit 125\n"


@pytest.mark.integration
def test_a_malformed_request_whose_spawn_was_given_up_leaves_the_zygote_serving(
    started: tuple[socket.socket, subprocess.Popen[bytes]],
) -> None:
    """The Python zygote wrote the reason on a pipe the host had closed: BrokenPipeError."""
    sock, process = started
    status = _send(sock, b"workdir=/tmp\0root=/tmp\0--", close_stderr=True)
    _status(status)
    assert _serves(sock, process), "the zygote died of a malformed request"


@pytest.mark.integration
def test_a_request_longer_than_the_zygote_reads_is_never_run_cut_short(
    started: tuple[socket.socket, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """A request cut at 1 MiB: run with its last argument cut, or the zygote dead."""
    if os.getuid() != 0:
        pytest.skip("SO_SNDBUFFORCE (a host with large socket buffers) needs root")
    sock, process = started
    sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 8 << 20)
    for name in ("work", "root"):
        (tmp_path / name).mkdir()
    head = f"workdir={tmp_path / 'work'}\0root={tmp_path / 'root'}\0cpu_seconds=5\0"
    head += "memory_mib=256\0pids=16\0network=0\0--\0/bin/true\0"
    clean = len(head.encode()) % 2  # the padding's two-byte characters cut whole
    for odd in (clean, 1 - clean):  # cut between characters, then inside one
        padding = "é" * (1 << 20)
        request = (head + "x" * odd + padding).encode()[: (1 << 20) + 100]
        status = _status(_send(sock, request))
        assert not status.startswith(b"pid"), f"a request cut short was run: {status!r}"
        assert _serves(sock, process), "the zygote died of a request cut inside a character"


@pytest.mark.integration
@pytest.mark.usefixtures("each_zygote")
def test_a_spawn_cancelled_before_the_pid_was_written_leaves_no_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel path read nothing, then the zygote wrote the pid, then the pipe closed."""
    looping = Looping(tmp_path)
    spawner = zygote.Zygote()
    read_first = zygote._written_pid

    def then_descheduled(fd: int, line: bytearray) -> int | None:
        found = read_first(fd, line)  # the zygote, stopped, has written nothing yet
        os.kill(spawner.pid or 0, signal.SIGCONT)  # it answers while we are away
        time.sleep(1)
        return found

    monkeypatch.setattr(zygote, "_written_pid", then_descheduled)

    async def go() -> None:
        try:
            spawner._started()
            os.kill(spawner.pid or 0, signal.SIGSTOP)
            task = asyncio.ensure_future(spawner.spawn(looping.request))
            for _ in range(5):  # to its wait for the pid line
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(1)
            assert not await looping.still_runs(), "the sandbox still runs"
        finally:
            if spawner.pid:
                os.kill(spawner.pid, signal.SIGCONT)
            spawner.close()

    asyncio.run(go())


def test_a_pid_whose_zygote_is_gone_is_never_killed() -> None:
    """``pid N`` and then the end of the pipe: the zygote died, and PID 1 with it; the
    number may be another process's by the time it is read."""
    bystander = subprocess.Popen(["sleep", "30"])
    read, write = os.pipe()
    try:
        os.set_blocking(read, False)
        os.write(write, f"pid {bystander.pid}\n".encode())
        os.close(write)
        assert zygote._written_pid(read, bytearray()) is None
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        os.close(read)


def test_a_lone_surrogate_in_a_written_path_gives_a_card(tmp_path: Path) -> None:
    """``file_diff`` let UnicodeEncodeError through: the Red step's card was never made."""
    from luminaguard.policy.action import Action
    from luminaguard.scheduler.cards import file_diff

    action = Action(
        kind="call", server="fs", tool="write_file",
        args={"path": "/work/\ud800.txt", "content": "planted"},
    )  # fmt: skip
    diff = file_diff(action, {"/work": tmp_path})
    assert diff is not None and "(now): the path is not text" in diff, diff

"""The host side of the sandbox zygote: one pre-started process that clones each sandbox.

Starting a process per sandbox costs an exec and its start-up; cloning one that has
already started costs well under a millisecond: the compiled zygote (``zygote.c``,
found or built by ``native``), or the Python one (``helper.py``) where none can be.
Each request sends the sandbox's arguments and four pipe ends (stdin, stdout, stderr,
status) over a ``SOCK_SEQPACKET`` socket pair. The zygote dies with the runner, and
every sandbox with the zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

from luminaguard.hypervisor.linux import seccomp
from luminaguard.hypervisor.linux.system import SYSTEM_DIRS
from luminaguard.hypervisor.sandbox import native

HELPER = Path(__file__).with_name("helper.py")
KILLED = 128 + signal.SIGKILL
ANSWER_WAIT = 60  # seconds a cancelled spawn's answer is awaited (the zygote's is at once)


def command(channel: int) -> list[str]:
    """The zygote to start on ``channel``: the compiled one if there is one, else Python's."""
    compiled = native.program()
    if compiled is None:
        return [sys.executable, "-I", "-S", str(HELPER), "--zygote", str(channel), str(os.getpid())]
    machine = os.uname().machine
    if machine not in seccomp.ARCHES:
        raise OSError(f"no seccomp filter for architecture {machine}: no sandbox")
    hex_filter = seccomp.program(machine).hex()
    return [str(compiled), str(channel), str(os.getpid()), hex_filter, ":".join(SYSTEM_DIRS)]


async def _reader(fd: int, first: bytes = b"") -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 << 20)
    if first:  # read off the pipe already: before anything the transport reads
        reader.feed_data(first)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0)
    )
    return reader


async def _writer(fd: int) -> asyncio.StreamWriter:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(fd, "wb", 0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)


class SandboxProcess:
    """A command running in a sandbox: its pipes, its PID 1's pid, its exit status."""

    def __init__(
        self,
        pid: int,
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        status: asyncio.StreamReader,
        pidfd: int | None,
    ) -> None:
        self.pid = pid
        self._pidfd = pidfd  # PID 1 for good: its pid may name another process once reaped
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._status = status
        self._ended: asyncio.Future[int] | None = None
        self.returncode: int | None = None

    async def _read_status(self) -> int:
        words = (await self._status.read()).decode().split()
        codes = [int(words[i + 1]) for i, word in enumerate(words[:-1]) if word == "exit"]
        self.returncode = codes[-1] if codes else KILLED  # no report: the zygote was killed
        if self._pidfd is not None:  # reaped (or the zygote gone, and PID 1 with it)
            os.close(self._pidfd)
            self._pidfd = None
        return self.returncode

    async def wait(self) -> int:
        """The exit status (128 + signal when killed), once the sandbox is gone."""
        if self._ended is None:  # one reader of the status pipe, however many waiters
            self._ended = asyncio.ensure_future(self._read_status())
        return await asyncio.shield(self._ended)

    def kill(self) -> None:
        """Kill the sandbox's PID 1, and with it its whole PID namespace.

        Through a pidfd taken when the zygote reported the pid: once the zygote has
        reaped PID 1 its pid is free, and a command that handed its output away can keep
        its exec waiting, and so this kill coming, while the pids wrap (32768 of them
        here: a few seconds of forks). Not the process group either: until PID 1 has
        called setsid, a moment after the report, it leads none.
        """
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)


class Zygote:
    """One started zygote (see ``command``), cloning sandboxes on request.

    Started on first use with ``subprocess`` (not asyncio), so one zygote serves any
    event loop; it exits when its socket closes, which happens when this object goes.
    """

    def __init__(self) -> None:
        self._socket: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _started(self) -> socket.socket:
        with self._lock:
            if self._socket is None or self._process is None or self._process.poll() is not None:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                self._process = subprocess.Popen(
                    command(theirs.fileno()),
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                theirs.close()
                self._socket = ours
                weakref.finalize(self, _stop, ours, self._process)
            return self._socket

    @property
    def pid(self) -> int | None:
        """The zygote's process id while it runs (each sandbox's PID 1 is its child)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    async def spawn(self, args: list[str]) -> SandboxProcess:
        """Start ``KEY=VALUE... -- ARGV...`` in a new sandbox; return its process."""
        request = _request(args)
        sock = self._socket
        if sock is None or self.pid is None:  # started, or again after it died: off the
            sock = await asyncio.to_thread(self._started)  # loop (it may compile, native)
        pipes = [os.pipe() for _ in range(4)]  # stdin, stdout, stderr, status
        theirs = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]]
        ours = [pipes[0][1], pipes[1][0], pipes[2][0], pipes[3][0]]  # the status pipe last
        try:
            socket.send_fds(sock, [request], theirs)
        except BaseException:  # too long to send (EMSGSIZE), say: our ends go too
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        line = bytearray()  # the status pipe's first line
        taken = False  # its pid: killed through the pidfd once taken
        pidfd: int | None = None
        streams: list[Any] = []  # the status reader, stdin's transport, stdout's and stderr's
        try:
            await _first_line(ours[-1], line)
            pid = _pid(bytes(line))
            pidfd, rest = _own(pid, ours[-1])
            taken = True
            # each fd is owned by its stream from the call on (fdopen comes before any await)
            streams.append(await _reader(ours.pop(), rest))
            stdin = await _writer(ours.pop(0))
            streams.append(stdin.transport)
            for _ in range(2):
                streams.append(await _reader(ours.pop(0)))
            return SandboxProcess(pid, stdin, streams[2], streams[3], streams[0], pidfd)
        except BaseException:  # cancelled, say: no sandbox left running unwatched
            if not taken:  # the pid may be written, unread: the zygote would not kill it then
                pidfd = _written_pid(ours[-1], line)
                if not line.endswith(b"\n"):  # not answered yet: awaited off the loop
                    _await_answer(ours.pop(), line)
            _abandon(ours, streams, pidfd)
            raise

    def close(self) -> None:
        """Stop the zygote (sandboxes still running die with it)."""
        if self._socket is not None and self._process is not None:
            _stop(self._socket, self._process)
        self._socket = None


def _request(args: list[str]) -> bytes:
    """The message for ``KEY=VALUE... -- ARGV...``: its arguments joined by NUL bytes."""
    if any("\0" in arg for arg in args):  # NUL separates them: never an argument split
        raise ValueError("a sandbox argument holds a NUL byte")
    if "--" not in args:  # an empty message would read as the end of the channel
        raise ValueError("a sandbox request is KEY=VALUE... -- ARGV...")
    return "\0".join(args).encode()


def _read_line(fd: int, line: bytearray) -> bool:
    """Add to ``line`` what the status pipe holds of its first line; False at end of file.

    A byte at a time: what follows the line stays in the pipe for its reader.
    """
    while not line.endswith(b"\n"):
        try:
            byte = os.read(fd, 1)
        except BlockingIOError:
            return True
        if not byte:
            return False
        line += byte
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a reader's callback may run again before its waiter does
        future.set_result(None)


async def _first_line(fd: int, line: bytearray) -> None:
    """Read the status pipe's first line (``pid N`` or ``exit 125``) into ``line``."""
    os.set_blocking(fd, False)
    loop = asyncio.get_running_loop()
    while not line.endswith(b"\n"):
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _resolve, readable)
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        if not _read_line(fd, line):
            return


def _pid(line: bytes) -> int:
    """The pid in a ``pid N`` line; OSError for anything else.

    "exit 125" alone: no clone could be made. Never its code taken for a pid, which
    kill() would signal (another process, or with 0 our group).
    """
    words = line.split()
    if len(words) != 2 or words[0] != b"pid" or not words[1].isdigit():
        raise OSError(f"the sandbox zygote started no sandbox: {b' '.join(words)!r}")
    return int(words[1])


def _written_pid(fd: int, line: bytearray) -> int | None:
    """A pidfd for the sandbox whose ``pid N`` the zygote wrote but we had not taken.

    The zygote kills a sandbox whose pid it cannot write, not one whose pid nobody read.
    """
    _read_line(fd, line)
    try:
        return _own(_pid(bytes(line)), fd)[0]
    except OSError:
        return None


def _await_answer(fd: int, line: bytearray) -> None:
    """A cancelled spawn's status pipe, unanswered yet: its first line awaited in a thread.

    Closed now, a ``pid N`` written after our last look and before the close is lost with
    the pipe while the zygote's write succeeded: its sandbox would run on, unwatched. The
    zygote answers each request at once (``pid N``, ``exit 125``, or the pipe closed); a
    pid is killed through its pidfd, as ``_written_pid`` does. The thread owns ``fd``.
    """

    def answered() -> None:
        try:
            os.set_blocking(fd, False)
            waiting = select.poll()  # not select(): the runner's descriptors pass 1024
            waiting.register(fd, select.POLLIN)
            while (
                waiting.poll(ANSWER_WAIT * 1000)
                and _read_line(fd, line)
                and not line.endswith(b"\n")
            ):
                pass
            pidfd = _written_pid(fd, line)
            if pidfd is not None:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                os.close(pidfd)
        finally:
            os.close(fd)

    threading.Thread(target=answered, name="sandbox-answer", daemon=True).start()


def _own(pid: int, fd: int) -> tuple[int | None, bytes]:
    """A pidfd for the sandbox's PID 1 while it is unreaped; what followed ``pid N``.

    Once the zygote has reaped it (and written ``exit``), the number may name another
    process: no pidfd then; nor when the pipe is at its end (the zygote died, and PID 1,
    killed with it, was reaped by another). The status pipe is read after the pidfd is opened, so an
    ``exit`` not there yet means the pidfd is PID 1's (the zygote reaps, then writes at
    once: the window between is a few instructions, and the pid must wrap inside it).
    """
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except OSError:  # gone already (reaped): nothing to kill
        return None, b""
    try:
        rest = os.read(fd, 64)
        ended = not rest or b"exit" in rest  # at the end, the zygote is gone: PID 1 with it
    except BlockingIOError:  # nothing more written: still ours, unreaped
        rest, ended = b"", False
    if ended and pidfd is not None:
        os.close(pidfd)
        pidfd = None
    return pidfd, rest


def _abandon(fds: list[int], streams: list[Any], pidfd: int | None) -> None:
    """A spawn that fails half-way: kill its sandbox, close what was opened for it.

    Closing the status pipe before the zygote wrote the pid makes it kill the sandbox (it
    cannot report the pid); closing its pipes gives a command EOF on stdin, EPIPE out.
    ``streams`` are readers and transports; ``fds`` the pipe ends not wrapped yet.
    """
    if pidfd is not None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.close(pidfd)
    for stream in streams:
        transport = getattr(stream, "_transport", stream)  # a reader's, or a transport
        transport.close()
    for fd in fds:
        os.close(fd)


def _stop(sock: socket.socket, process: subprocess.Popen[bytes]) -> None:
    sock.close()
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        process.wait(timeout=2)
    if process.poll() is None:
        process.kill()
        process.wait()

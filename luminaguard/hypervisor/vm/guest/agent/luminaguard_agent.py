#!/usr/bin/env python3
"""The LuminaGuard guest agent: runs inside the micro-VM, answers the host over one stream.

Standard library only. Started by the guest's init as
``luminaguard_agent.py [--device /dev/vport0p1 | --vsock PORT | --unix PATH] [--workdir /work]``:
a virtio-serial port (QEMU), a vsock port it listens on (Firecracker: the host connects
through Firecracker's Unix socket), or a Unix socket (tests); with none of them it speaks
on stdin/stdout. A listening agent serves one host connection at a time, then the next.
The protocol (framing, versions, operations) is documented in
``luminaguard/transport/guest_protocol.py``; this file repeats only what it must, so
that it can be copied into an image on its own.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

VERSION = 1
MAX_FRAME = 16 << 20
OUTPUT_LIMIT = 1 << 20
HEADER = struct.Struct(">I")


def _parsed(body: bytes) -> dict[str, Any] | Exception:
    """The request in a frame, or what is wrong with it (answered as an error)."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deep
        return exc
    return request if isinstance(request, dict) else ValueError("a request is a JSON object")


class Agent:
    """Reads requests, runs each in a thread, writes responses one frame at a time.

    The quick ones (``INLINE``: ``hello``, a clone's ``reseed``) are answered on the
    reading thread: a restored clone's first answer then starts no thread, which under
    software emulation is much of its cost (its code is translated anew in each clone).
    """

    def __init__(
        self, reader: BinaryIO, writer: BinaryIO, workdir: Path, device: bool = False
    ) -> None:
        self.reader, self.writer, self.workdir = reader, writer, workdir
        self.device = device  # a virtio-serial port reads EOF while no host is connected
        self.lock = threading.Lock()
        self.running = True
        self.streams: dict[int, subprocess.Popen[bytes]] = {}
        self.next_stream = 1

    def send(self, message: dict[str, Any]) -> None:
        """Write one frame; frames from several threads never interleave."""
        body = json.dumps(message, separators=(",", ":")).encode()
        with self.lock:
            self.writer.write(HEADER.pack(len(body)) + body)
            self.writer.flush()

    def read_exactly(self, count: int) -> bytes | None:
        """Exactly ``count`` bytes, or None at the end of the stream."""
        data = b""
        while len(data) < count:
            chunk = self.reader.read(count - len(data))
            if not chunk:
                if not self.device:
                    return None
                time.sleep(0.01)  # no host on the port (yet, or any more): wait for one
                data = b""  # a frame cut by a disconnect is dropped whole
                continue
            data += chunk
        return data

    def serve(self) -> None:
        """Read frames until the stream ends; each request in a thread, but the ``INLINE`` ones."""
        while self.running:
            header = self.read_exactly(4)
            if header is None:
                return
            (length,) = HEADER.unpack(header)
            if length > MAX_FRAME:
                self.send(
                    {
                        "v": VERSION,
                        "id": None,
                        "ok": False,
                        "error": f"frame of {length} bytes is too large",
                    }
                )
                return
            body = self.read_exactly(length)
            if body is None:
                return
            request = _parsed(body)
            if isinstance(request, dict) and str(request.get("op")) in INLINE:
                self.handle(request)  # quick: answered here, no thread started for it
            else:
                threading.Thread(target=self.handle, args=(request,), daemon=True).start()

    def handle(self, request: dict[str, Any] | Exception) -> None:
        """Answer one request (or what was wrong with it); any failure is an error response."""
        request_id = None
        try:
            if isinstance(request, Exception):
                raise request
            request_id = request.get("id")
            if request.get("v") != VERSION:
                raise ValueError(
                    f"protocol version {request.get('v')!r} not spoken (this agent: {VERSION})"
                )
            operation = OPERATIONS.get(str(request.get("op")))
            if operation is None:
                raise ValueError(f"unknown operation {request.get('op')!r}")
            result = operation(self, request)
            self.send({"v": VERSION, "id": request_id, "ok": True, "result": result})
        except Exception as exc:  # every failure becomes an error response, never a crash
            self.send(
                {
                    "v": VERSION,
                    "id": request_id,
                    "ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )

    def path(self, relative: str) -> Path:
        """A path inside the work folder, or ValueError if it would leave it."""
        target = (self.workdir / relative).resolve()
        if target != self.workdir and self.workdir not in target.parents:
            raise ValueError(f"path {relative!r} leaves the work folder")
        return target


def op_hello(agent: Agent, request: dict[str, Any]) -> dict[str, Any]:
    """Health: who and where the agent is."""
    return {
        "version": VERSION,
        "agent": "luminaguard-guest",
        "pid": os.getpid(),
        "workdir": str(agent.workdir),
    }


def _limits(request: dict[str, Any]) -> Any:
    def apply() -> None:
        os.setsid()
        if request.get("cpu_seconds"):
            cpu = int(request["cpu_seconds"])
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        if request.get("memory_mib"):
            size = int(request["memory_mib"]) << 20
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if request.get("pids"):
            resource.setrlimit(resource.RLIMIT_NPROC, (int(request["pids"]), int(request["pids"])))

    return apply


def op_exec(agent: Agent, request: dict[str, Any]) -> dict[str, Any]:
    """Run a command to completion with rlimits and a timeout."""
    argv = request.get("argv") or ["/bin/sh", "-c", str(request["command"])]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(agent.workdir),
        **request.get("env", {}),
    }
    started = time.monotonic()
    process = subprocess.Popen(
        argv, cwd=agent.workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, preexec_fn=_limits(request),
    )  # fmt: skip
    timed_out = False
    try:
        out, err = process.communicate(
            (request.get("stdin") or "").encode(), timeout=float(request.get("timeout", 60))
        )
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    return {
        "exit_code": process.returncode,
        "stdout": out[:OUTPUT_LIMIT].decode("utf-8", "replace"),
        "stderr": err[:OUTPUT_LIMIT].decode("utf-8", "replace"),
        "timed_out": timed_out,
        "truncated": len(out) > OUTPUT_LIMIT or len(err) > OUTPUT_LIMIT,
        "duration": time.monotonic() - started,
    }


def op_put(agent: Agent, request: dict[str, Any]) -> dict[str, Any]:
    """Write a file in the work folder."""
    target = agent.path(str(request["path"]))
    data = base64.b64decode(request["data"])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return {"size": len(data)}


def op_get(agent: Agent, request: dict[str, Any]) -> dict[str, Any]:
    """Read a file from the work folder."""
    return {"data": base64.b64encode(agent.path(str(request["path"])).read_bytes()).decode()}


def _relay(agent: Agent, stream: int, process: subprocess.Popen[bytes]) -> None:
    """Send the process's output as events, then its exit status."""

    def pump(pipe: BinaryIO, fd: int) -> None:
        while chunk := pipe.read1(65536):  # type: ignore[attr-defined]
            data = base64.b64encode(chunk).decode()
            agent.send({"v": VERSION, "event": "output", "stream": stream, "fd": fd, "data": data})

    pumps = [
        threading.Thread(target=pump, args=(p, fd), daemon=True)
        for p, fd in ((process.stdout, 1), (process.stderr, 2))
    ]
    for thread in pumps:
        thread.start()
    for thread in pumps:
        thread.join()
    code = process.wait()
    agent.streams.pop(stream, None)
    agent.send({"v": VERSION, "event": "exit", "stream": stream, "code": code})


def op_spawn(agent: Agent, request: dict[str, Any]) -> dict[str, Any]:
    """Start a long-lived process (an MCP stdio server); relay its output as events."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(agent.workdir),
        **request.get("env", {}),
    }
    process = subprocess.Popen(
        request["argv"], cwd=agent.workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, preexec_fn=_limits(request),
    )  # fmt: skip
    with agent.lock:
        stream = agent.next_stream
        agent.next_stream += 1
    agent.streams[stream] = process
    threading.Thread(target=_relay, args=(agent, stream, process), daemon=True).start()
    return {"stream": stream, "pid": process.pid}


def op_write(agent: Agent, request: dict[str, Any]) -> dict[str, Any]:
    """Write to a spawned process's stdin; ``close`` ends its input."""
    process = agent.streams.get(int(request["stream"]))
    if process is None or process.stdin is None:
        raise ValueError(f"no running stream {request['stream']!r}")
    if request.get("data"):
        process.stdin.write(base64.b64decode(request["data"]))
        process.stdin.flush()
    if request.get("close"):
        process.stdin.close()
    return {}


def op_kill(agent: Agent, request: dict[str, Any]) -> dict[str, Any]:
    """Kill a spawned process and everything it started."""
    process = agent.streams.get(int(request["stream"]))
    if process is not None:
        os.killpg(process.pid, signal.SIGKILL)
    return {}


def op_reseed(agent: Agent, request: dict[str, Any]) -> dict[str, Any]:
    """After a snapshot restore: mix fresh host entropy into the kernel's pool, new identity.

    The agent keeps no random generator of its own; what it starts after this draws
    from the kernel's pool, now different in every clone.
    """
    with open("/dev/urandom", "wb") as pool:
        pool.write(base64.b64decode(request["entropy"]))
    machine_id = str(request["machine_id"])
    if not all(c in "0123456789abcdef" for c in machine_id) or len(machine_id) != 32:
        raise ValueError("machine_id is 32 lower-case hex digits")
    Path(os.environ.get("LUMINAGUARD_MACHINE_ID", "/run/machine-id")).write_text(machine_id + "\n")
    return {"machine_id": machine_id}


def op_shutdown(agent: Agent, request: dict[str, Any]) -> dict[str, Any]:
    """Stop serving and exit shortly after answering."""
    agent.running = False
    threading.Timer(0.1, lambda: os._exit(0)).start()
    return {}


INLINE = {"hello", "reseed"}  # never block: answered on the reading thread, in order
OPERATIONS = {
    "hello": op_hello,
    "exec": op_exec,
    "put": op_put,
    "get": op_get,
    "spawn": op_spawn,
    "write": op_write,
    "kill": op_kill,
    "reseed": op_reseed,
    "shutdown": op_shutdown,
}


def serve_connections(listener: socket.socket, workdir: Path) -> None:
    """Serve each host connection in turn until one asks for shutdown."""
    listener.listen(1)
    while True:
        connection, _ = listener.accept()
        with connection, connection.makefile("rwb", buffering=0) as stream:
            agent = Agent(stream, stream, workdir)
            agent.serve()
        if not agent.running:
            return


def _listener(args: argparse.Namespace) -> socket.socket | None:
    if args.vsock is not None:
        vsock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        vsock.bind((socket.VMADDR_CID_ANY, args.vsock))
        return vsock
    if args.unix is not None:
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(args.unix)
        return unix
    return None


def main() -> int:
    """Serve on the device or socket given, or on stdin/stdout."""
    parser = argparse.ArgumentParser(description="LuminaGuard guest agent")
    parser.add_argument("--device", help="a virtio-serial port")
    parser.add_argument("--vsock", type=int, metavar="PORT", help="listen on this vsock port")
    parser.add_argument("--unix", metavar="PATH", help="listen on this Unix socket")
    parser.add_argument("--workdir", default="/work")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    listener = _listener(args)
    if listener is not None:
        serve_connections(listener, workdir)
    elif args.device:
        stream = open(args.device, "r+b", buffering=0)  # noqa: SIM115 - lives as long as the agent
        Agent(stream, stream, workdir, device=True).serve()
    else:
        Agent(sys.stdin.buffer, sys.stdout.buffer, workdir).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

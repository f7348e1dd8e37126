"""The guest-agent protocol: length-prefixed JSON frames over a byte stream.

Version 1. The stream is a virtio-serial port (QEMU) or a vsock connection
(Firecracker); tests use a pipe. Every frame is::

    4 bytes   length N of the body, unsigned big-endian, N <= 16 MiB
    N bytes   a UTF-8 JSON object

Requests carry ``{"v": 1, "id": INT, "op": NAME, ...arguments}``; each gets exactly one
response ``{"v": 1, "id": INT, "ok": true, "result": {...}}`` or
``{"v": 1, "id": INT, "ok": false, "error": "one line"}``. A request of another
version gets an error naming the versions the agent speaks.

Operations (arguments -> result):

- ``hello`` -> ``{"version", "agent", "pid", "workdir"}``: health.
- ``exec`` ``{"argv" | "command", "env", "timeout", "stdin", "memory_mib", "cpu_seconds",
  "pids"}`` -> ``{"exit_code", "stdout", "stderr", "timed_out", "duration", "truncated"}``:
  run to completion in the work folder, with rlimits and a timeout (the process group is
  killed on timeout). Output beyond 1 MiB per stream is cut and ``truncated`` is set.
- ``put`` ``{"path", "data"}`` (base64) -> ``{"size"}`` and ``get`` ``{"path"}`` ->
  ``{"data"}``: files in the work folder; paths may not leave it.
- ``spawn`` ``{"argv", "env", limits}`` -> ``{"stream", "pid"}``: start a long-lived
  process (an MCP stdio server). Its output arrives as events, frames without an
  ``id``: ``{"v": 1, "event": "output", "stream", "fd": 1|2, "data"}`` (base64) and,
  when it ends, ``{"v": 1, "event": "exit", "stream", "code"}``.
- ``write`` ``{"stream", "data", "close"}`` -> ``{}``: feed its stdin (``close`` ends it).
- ``kill`` ``{"stream"}`` -> ``{}``: kill it and its process group.
- ``reseed`` ``{"entropy", "machine_id"}`` -> ``{"machine_id"}``: after a snapshot
  restore, mix host entropy (base64) into /dev/urandom and set /etc/machine-id, so that
  clones of one snapshot share no random state or identity.
- ``shutdown`` -> ``{}``, after which the agent exits.
"""

from __future__ import annotations

import json
import struct
from typing import Any

VERSION = 1
MAX_FRAME = 16 << 20
HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame that breaks the protocol (too large, not a JSON object)."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame holding ``message``."""
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object of a frame body."""
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


def frame_length(header: bytes) -> int:
    """The body length a 4-byte header announces, checked against the limit."""
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    return int(length)

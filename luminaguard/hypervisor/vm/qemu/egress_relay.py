#!/usr/bin/env python3
"""``egress_relay.py HOST PORT``: relay stdin/stdout to one TCP connection (QEMU guestfwd).

QEMU starts one relay per guest connection to an allowed ``host:port`` and connects
the guest's stream to its standard input and output. Standard library only.
"""

from __future__ import annotations

import os
import socket
import sys
import threading


def _copy(read: int, write: socket.socket) -> None:
    while chunk := os.read(read, 65536):
        write.sendall(chunk)
    write.shutdown(socket.SHUT_WR)


def main() -> int:
    """Connect, then copy both ways until the remote side closes."""
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        remote = socket.create_connection((host, port), timeout=10)
    except OSError as exc:
        print(f"egress relay: {host}:{port}: {exc}", file=sys.stderr)
        return 1
    remote.settimeout(None)
    threading.Thread(target=_copy, args=(0, remote), daemon=True).start()
    while chunk := remote.recv(65536):
        os.write(1, chunk)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""An Image's egress allow-list on the qemu backend: the listed host:port and nothing else."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError, ExecResult, SandboxSpec
from luminaguard.hypervisor.vm.qemu.backend import QemuBackend

pytestmark = pytest.mark.vm

BACKEND = QemuBackend()
if not BACKEND.availability().usable:
    pytest.skip(
        f"qemu backend unavailable: {BACKEND.availability().detail}", allow_module_level=True
    )

PROBE = """python3 -c '
import socket, sys
try:
    print(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).recv(64).decode())
except OSError as exc:
    print("refused:", type(exc).__name__)
' {host} {port}"""


def banner_server(text: bytes) -> tuple[socket.socket, threading.Event]:
    """A server on every host address that greets each connection with ``text``."""
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection = server.accept()[0]
            except OSError:
                continue
            connection.sendall(text)
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, stop


@pytest.fixture
def servers() -> Iterator[tuple[int, int]]:
    allowed, stop_allowed = banner_server(b"allowed")
    other, stop_other = banner_server(b"not allowed")
    yield allowed.getsockname()[1], other.getsockname()[1]
    stop_allowed.set()
    stop_other.set()


def test_only_the_listed_host_and_port_are_reachable(servers: tuple[int, int]) -> None:
    host = socket.gethostname()
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        pytest.skip(f"this machine's own name {host!r} does not resolve here")
    allowed, other = servers
    spec = SandboxSpec(
        name="egress", workdir=Path("/nonexistent"), network=True, egress=(f"{host}:{allowed}",)
    )

    async def probe() -> list[ExecResult]:
        vm = await BACKEND.create(spec)
        try:
            targets = [(host, allowed), (host, other), ("10.0.2.2", allowed), ("1.1.1.1", 443)]
            return [await BACKEND.exec(vm, PROBE.format(host=h, port=p), 30) for h, p in targets]
        finally:
            await BACKEND.destroy(vm)

    listed, other_port, host_gateway, internet = asyncio.run(probe())
    assert listed.stdout.strip() == "allowed", listed.stderr
    for refused in (other_port, host_gateway, internet):
        assert refused.stdout.startswith("refused:"), (refused.stdout, refused.stderr)


def test_egress_is_refused_where_it_cannot_be_given() -> None:
    pooled = SandboxSpec(
        name="p", workdir=Path("/nonexistent"), network=True, egress=("pypi.org:443",), pool="x"
    )
    with pytest.raises(BackendError, match="not available with pools"):
        asyncio.run(BACKEND.create(pooled))
    empty = SandboxSpec(name="e", workdir=Path("/nonexistent"), network=True)
    with pytest.raises(BackendError, match="with no egress entries reaches nothing"):
        asyncio.run(BACKEND.create(empty))

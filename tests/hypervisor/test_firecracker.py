"""Firecracker API client: every request it sends is valid against Firecracker's API file."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from luminaguard.hypervisor.registry import hardware_kvm
from luminaguard.hypervisor.vm.firecracker.api import (
    FirecrackerApi,
    FirecrackerError,
    VmConfig,
    jailer_command,
    unix_http,
)
from tests.conftest import ROOT
from tests.hypervisor.firecracker_contract import Contract

SPEC = ROOT.parent / "shared" / "reference" / "firecracker" / "firecracker-api.yaml"
pytestmark = pytest.mark.skipif(
    not SPEC.exists(), reason=f"the Firecracker API file is missing: {SPEC}"
)


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract(SPEC)


class Recorder:
    """A sender that records requests and answers like Firecracker does on success."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    async def __call__(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        return (200, {"id": "vm", "state": "Running"}) if method == "GET" else (204, None)


def test_every_request_of_a_vm_lifecycle_is_valid(contract: Contract, tmp_path: Path) -> None:
    recorder = Recorder()
    api = FirecrackerApi(recorder)
    config = VmConfig(
        tmp_path / "vmlinux", tmp_path / "rootfs.ext4", vsock_path=tmp_path / "v.sock"
    )

    async def lifecycle() -> None:
        await api.configure(config)
        await api.start()
        await api.pause()
        await api.snapshot(tmp_path / "state", tmp_path / "memory")
        await api.resume()
        await api.restore(tmp_path / "state", tmp_path / "memory", tmp_path / "clone-1.sock")
        await api.restore(tmp_path / "state", tmp_path / "memory", None)
        await api.describe()

    asyncio.run(lifecycle())
    paths = [f"{m} {p}" for m, p, _ in recorder.requests]
    assert paths == [
        "PUT /boot-source", "PUT /drives/rootfs", "PUT /machine-config", "PUT /vsock",
        "PUT /actions", "PATCH /vm", "PUT /snapshot/create", "PATCH /vm",
        "PUT /snapshot/load", "PUT /snapshot/load", "GET /",
    ]  # fmt: skip
    for method, path, body in recorder.requests:
        assert contract.problems(method, path, body) == [], (method, path, body)
    restore = recorder.requests[8][2]
    assert restore["vsock_override"] == {"uds_path": str(tmp_path / "clone-1.sock")}
    assert restore["mem_backend"]["backend_type"] == "File"


@pytest.mark.parametrize(
    ("method", "path", "body", "problem"),
    [
        ("PUT", "/machine-config", {"vcpu_count": "2", "mem_size_mib": 8}, "not of type 'integer'"),
        ("PUT", "/machine-config", {"vcpu_count": 1}, "'mem_size_mib' is a required property"),
        ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "is_root_device": True, "ro": True},
         "Additional properties are not allowed ('ro' was unexpected)"),
        ("PATCH", "/vm", {"state": "Sleeping"}, "is not one of ['Paused', 'Resumed']"),
        ("PUT", "/actions", {"action_type": "Reboot"}, "is not one of"),
        ("PUT", "/snapshot/load",
         {"snapshot_path": "s", "mem_backend": {"backend_type": "Disk", "backend_path": "m"}},
         "is not one of"),
        ("PUT", "/teleport", {}, "no such path"),
        ("DELETE", "/vm", None, "method not defined"),
    ],
)  # fmt: skip
def test_a_wrong_request_is_rejected(
    contract: Contract, method: str, path: str, body: Any, problem: str
) -> None:
    problems = contract.problems(method, path, body)
    assert problems and problem in " ".join(problems)


def test_http_over_the_unix_socket(tmp_path: Path) -> None:
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        lines = request.split(b"\r\n")
        sizes = [h.split(b":")[1] for h in lines if h.lower().startswith(b"content-length")]
        length = int(sizes[0]) if sizes else 0
        seen.append(request + await reader.readexactly(length))
        if b"/actions" in request:
            head = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n"
            writer.write(head + b'{"fault_message": "no kernel"}')
        else:
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    async def go() -> str:
        socket_path = tmp_path / "fc.sock"
        server = await asyncio.start_unix_server(serve, str(socket_path))
        api = FirecrackerApi(lambda m, p, b: unix_http(socket_path, m, p, b))
        await api.pause()
        try:
            await api.start()
        except FirecrackerError as exc:
            return str(exc)
        finally:
            server.close()
        return "no error"

    assert asyncio.run(go()) == "PUT /actions: HTTP 400: no kernel"
    assert seen[0].startswith(b"PATCH /vm HTTP/1.1\r\n") and seen[0].endswith(
        b'{"state": "Paused"}'
    )


def test_unreachable_socket_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FirecrackerError, match="cannot reach the Firecracker API"):
        asyncio.run(unix_http(tmp_path / "none.sock", "GET", "/", None))


def test_a_silent_socket_is_a_clear_error(tmp_path: Path) -> None:
    async def go() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_unix_server(hang_up, str(tmp_path / "s.sock"))
        try:
            await unix_http(tmp_path / "s.sock", "GET", "/", None)
        finally:
            server.close()

    with pytest.raises(FirecrackerError, match="no HTTP answer"):
        asyncio.run(go())


def test_jailer_command() -> None:
    argv = jailer_command("vm-1", Path("/usr/bin/firecracker"), 1000, 1000, Path("/srv/jail"))
    assert argv[:3] == ["jailer", "--id", "vm-1"]
    assert "--new-pid-ns" in argv and argv[-2:] == ["--api-sock", "/run/firecracker.socket"]


def test_real_firecracker_answers_the_api(tmp_path: Path, contract: Contract) -> None:
    binary = shutil.which("firecracker")
    if binary is None:
        pytest.skip("the firecracker binary is not installed (no registry here ships it)")
    if not hardware_kvm():
        pytest.skip("no hardware KVM (vmx/svm) on this machine: Firecracker cannot run")
    socket_path = tmp_path / "fc.sock"
    process = subprocess.Popen([binary, "--api-sock", str(socket_path)])
    try:
        deadline = time.monotonic() + 5
        while not socket_path.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        api = FirecrackerApi(lambda m, p, b: unix_http(socket_path, m, p, b))
        info = asyncio.run(api.describe())
        assert info["state"] == "Not started"
    finally:
        process.kill()
        process.wait()


@pytest.mark.vm
def test_real_firecracker_runs_the_guest_image(tmp_path: Path) -> None:
    """Where Firecracker can run: a cold boot and a pool clone of the real guest image."""
    from luminaguard.hypervisor.base import PoolConfig, SandboxSpec
    from luminaguard.hypervisor.vm.firecracker.backend import FirecrackerBackend

    backend = FirecrackerBackend()
    available = backend.availability()
    if not available.usable:
        pytest.skip(f"firecracker backend: {available.detail}")

    async def go() -> None:
        backend.configure_pools([PoolConfig("fc", warm=1)])
        cold = await backend.create(SandboxSpec(name="cold", workdir=tmp_path))
        clone = await backend.create(SandboxSpec(name="w", workdir=tmp_path, pool="fc"))
        try:
            for vm in (cold, clone):
                assert (await backend.exec(vm, "echo ok", 30)).stdout == "ok\n"
        finally:
            await backend.destroy(cold)
            await backend.destroy(clone)
            await backend.aclose()

    asyncio.run(go())

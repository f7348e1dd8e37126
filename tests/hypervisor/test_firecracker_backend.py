"""The firecracker backend's host side, against a fake Firecracker that enforces the API file.

The fake (tests/fixtures/fake_firecracker.py) answers 400 to any request the API
description rejects and runs the real guest agent behind a vsock-style socket, so
these tests cover configuration, boot, the vsock handshake, commands, snapshots and
clones. A real Firecracker needs hardware KVM: see test_firecracker.py, which runs it
where it exists and skips with the reason elsewhere.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError, PoolConfig, SandboxSpec, VmShape
from luminaguard.hypervisor.vm.firecracker import backend as firecracker
from luminaguard.hypervisor.vm.image.build import GuestImage
from tests.conftest import FIXTURES
from tests.hypervisor.test_firecracker import SPEC

FAKE = FIXTURES / "fake_firecracker.py"
pytestmark = pytest.mark.skipif(not SPEC.exists(), reason=f"no Firecracker API file: {SPEC}")


@pytest.fixture
def backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[firecracker.FirecrackerBackend]:
    monkeypatch.setenv("LUMINAGUARD_FIRECRACKER", str(FAKE))
    monkeypatch.setattr(firecracker, "CACHE", tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    found = firecracker.FirecrackerBackend()
    found._images[None] = GuestImage(tmp_path / "vmlinux", tmp_path / "initrd", "key")
    yield found
    asyncio.run(found.aclose())


def requests(vm_folder: Path) -> list[str]:
    return (vm_folder / "api.sock.log").read_text().splitlines()


def test_a_cold_boot_configures_starts_and_reaches_the_agent_over_vsock(
    backend: firecracker.FirecrackerBackend, tmp_path: Path
) -> None:
    async def go() -> None:
        vm = await backend.create(SandboxSpec(name="a", workdir=tmp_path, vm=VmShape(vcpus=2)))
        try:
            result = await backend.exec(vm, "echo hello from the guest agent", 10)
            assert result.ok and result.stdout == "hello from the guest agent\n"
            assert requests(vm.folder) == [
                "PUT /boot-source", "PUT /machine-config", "PUT /vsock", "PUT /actions",
            ]  # fmt: skip
            process = vm.process
        finally:
            await backend.destroy(vm)
        assert process is not None and process.poll() is not None
        assert not vm.folder.exists()

    asyncio.run(go())


def test_a_pool_serves_clones_restored_from_one_snapshot(
    backend: firecracker.FirecrackerBackend, tmp_path: Path
) -> None:
    backend.configure_pools([PoolConfig("fc", warm=2, maximum=4)])
    spec = SandboxSpec(name="p", workdir=tmp_path, pool="fc")

    async def go() -> None:
        first = await backend.create(spec)
        second = await backend.create(spec)
        try:
            assert first.folder != second.folder
            for vm in (first, second):
                assert (await backend.exec(vm, "echo clone", 10)).stdout == "clone\n"
                assert requests(vm.folder) == ["PUT /snapshot/load"]
            snapshots = sorted(p.suffix for p in (tmp_path / "cache").iterdir())
            assert snapshots == [".mem", ".state"]
        finally:
            await backend.destroy(first)
            await backend.destroy(second)

    asyncio.run(go())


def test_without_the_binary_the_backend_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMINAGUARD_FIRECRACKER", "/nonexistent/firecracker")
    available = firecracker.FirecrackerBackend().availability()
    assert not available.usable and "firecracker binary not found" in available.detail


def test_a_firecracker_that_dies_at_once_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = tmp_path / "firecracker"
    dead.write_text("#!/bin/sh\necho 'cannot open /dev/kvm' >&2\nexit 1\n")
    dead.chmod(0o755)
    monkeypatch.setenv("LUMINAGUARD_FIRECRACKER", str(dead))
    backend = firecracker.FirecrackerBackend()
    backend._images[None] = GuestImage(tmp_path / "vmlinux", tmp_path / "initrd", "key")
    with pytest.raises(BackendError, match="cannot open /dev/kvm"):
        asyncio.run(backend.create(SandboxSpec(name="d", workdir=tmp_path)))
    assert os.path.exists(dead)

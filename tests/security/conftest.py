"""Fixtures for the attack tests: inside the namespace sandbox and gVisor."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import Backend, ExecResult, SandboxSpec
from luminaguard.hypervisor.gvisor.backend import GvisorBackend
from luminaguard.hypervisor.linux.system import NOBODY
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from tests.integration.conftest import each_zygote, sandbox_problem, use_zygote

__all__ = ["each_zygote"]  # a fixture for the attack tests here too

Run = Callable[..., ExecResult]


@pytest.fixture(params=["sandbox", "sandbox-python-zygote", "gvisor"])
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each isolating backend in turn; skipped, with the reason, where it cannot run.

    The namespace sandbox twice: with the compiled zygote and with the Python one.
    """
    if request.param.startswith("sandbox"):
        problem = sandbox_problem()
        if problem:
            pytest.skip(problem)
        use_zygote(request, "python" if request.param.endswith("zygote") else "compiled")
        return "sandbox"
    else:
        available = GvisorBackend().availability()
        if not available.usable:
            pytest.skip(f"gvisor backend: {available.detail}")
    return str(request.param)


@pytest.fixture
def sandbox() -> None:
    """Skip (with the reason) where Linux namespaces cannot be created."""
    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)


def new_backend(name: str) -> Backend:
    """A fresh backend of that name (a fresh zygote for the namespace sandbox)."""
    return SandboxBackend() if name == "sandbox" else GvisorBackend()


@pytest.fixture
def run_in_sandbox(backend_name: str) -> Run:
    """Run one command in a fresh sandbox of the backend under test."""

    def run(tmp_path: Path, command: str, timeout: float = 30, **spec: object) -> ExecResult:
        async def go() -> ExecResult:
            backend = new_backend(backend_name)
            workdir = tmp_path / "work"
            handle = await backend.create(SandboxSpec(name="t", workdir=workdir, **spec))  # type: ignore[arg-type]
            try:
                return await backend.exec(handle, command, timeout)
            finally:
                await backend.destroy(handle)

        return asyncio.run(go())

    return run


class Looping:
    """A zygote request for a sandbox that rewrites ``/work/alive`` every 50 ms, forever.

    For the tests of a spawn cancelled half-way: ``still_runs`` says whether it lives on.
    """

    def __init__(self, tmp_path: Path) -> None:
        work, root = tmp_path / "work", tmp_path / "root"
        work.mkdir()
        work.chmod(0o777)  # the sandbox's user (nobody, as root) writes there
        root.mkdir()
        self.marker = work / "alive"
        self.request = [
            f"workdir={work}", f"root={root}", "cpu_seconds=5", "memory_mib=256", "pids=16",
            "network=0", "--", "/bin/sh", "-c",
            "while :; do date +%s%N > /work/alive; sleep 0.05; done",
        ]  # fmt: skip

    def _stamp(self) -> str:
        return self.marker.read_text() if self.marker.exists() else ""

    async def still_runs(self) -> bool:
        """Whether the marker changes over half a second."""
        before = self._stamp()
        await asyncio.sleep(0.5)
        return self._stamp() != before


def unprivileged_runner(*owned: Path) -> list[str]:
    """The command prefix that runs a runner as ``nobody``, who is given ``owned``.

    [] when we are not root. Skips, with the reason, without ``setpriv``.
    """
    if os.getuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to run the runner unprivileged")
    for path in owned:
        os.chown(path, NOBODY, NOBODY)
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]

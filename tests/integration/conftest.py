from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.linux import work_disk
from luminaguard.hypervisor.sandbox import native
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from tests.server.live import LiveServer, serving


@functools.cache
def sandbox_problem() -> str | None:
    """Why the namespace sandbox cannot run here, or None when it can."""

    async def probe() -> str | None:
        backend = SandboxBackend()
        root = Path("/tmp/luminaguard-probe")
        handle = await backend.create(SandboxSpec(name="probe", workdir=root / "work"))
        try:
            result = await backend.exec(handle, "true", 10)
        finally:
            await backend.destroy(handle)
            if os.getuid() == 0:
                work_disk.detach(root / "work")
        return (
            None
            if result.ok
            else f"sandbox probe failed: {result.failure()}: {result.stderr.strip()}"
        )

    try:
        return asyncio.run(probe())
    except OSError as exc:
        return f"sandbox probe failed: {exc}"


@pytest.fixture
def sandbox() -> None:
    """Skip (with the reason) where Linux namespaces cannot be created."""
    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)


def use_zygote(request: pytest.FixtureRequest, which: str) -> None:
    """Have this test's namespace sandboxes use the ``compiled`` or the ``python`` zygote.

    The compiled one skips, with the reason, where it cannot be built or run here.
    """
    if which == "python":
        request.getfixturevalue("monkeypatch").setattr(native, "program", lambda: None)
    elif native.program() is None:
        pytest.skip(f"no compiled sandbox zygote: {native.reason()}")


@pytest.fixture(params=["compiled", "python"])
def each_zygote(request: pytest.FixtureRequest) -> str:
    """The test once with each sandbox zygote (see ``use_zygote``)."""
    use_zygote(request, request.param)
    return str(request.param)


NPM_SERVERS = Path(__file__).resolve().parents[2] / "mcp-servers" / "node_modules" / ".bin"


@pytest.fixture(scope="session")
def npm_servers() -> Path:
    """The pinned npm MCP servers (installed by `make mcp-servers`); skip with the reason.

    Session-scoped (it skips, or not, for the whole session), so that module fixtures
    that run the servers can ask for it and skip before they start anything.
    """
    import shutil

    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the npm MCP server tests need it")
    if not (NPM_SERVERS / "mcp-server-filesystem").exists():
        pytest.skip("npm MCP servers not installed: run `make mcp-servers`")
    return NPM_SERVERS


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real ``luminaguard serve`` on a free loopback port, its own state and workspace.

    Tokens for every name of ``tests.server.live.TOKENS`` are made with the CLI; on
    teardown the server gets SIGTERM and must exit 0. A test may kill and start it again.
    """
    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    with serving(tmp_path / "state", tmp_path / "workspace") as server:
        yield server


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``live_server`` shared by the tests of a module (each uses its own run ids)."""
    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    base = tmp_path_factory.mktemp("serve")
    with serving(base / "state", base / "workspace") as server:
        yield server

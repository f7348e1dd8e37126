from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.sandbox import SandboxBackend


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

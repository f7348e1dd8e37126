"""Pools are configured once, by name; an agent's request names a pool, never configures one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError, PoolConfig, SandboxSpec, VmShape
from tests.hypervisor.fake_machine import FakeVmBackend

SHAPE = VmShape(Path("/recipes/tiny.yaml"), 192, 2)
POOL = PoolConfig("warm", SHAPE, warm=1, maximum=2)


def test_a_pool_is_configured_once() -> None:
    backend = FakeVmBackend()
    backend.configure_pools([POOL])
    backend.configure_pools([POOL])  # the same again: nothing changes
    with pytest.raises(BackendError, match="pool 'warm' is configured already, differently"):
        backend.configure_pools([PoolConfig("warm", SHAPE, warm=2, maximum=2)])
    assert backend.pool_configs == {"warm": POOL}


def test_an_agent_naming_an_unknown_pool_is_refused(tmp_path: Path) -> None:
    backend = FakeVmBackend()
    with pytest.raises(BackendError, match="no pool 'nowhere' is configured"):
        asyncio.run(backend.create(SandboxSpec("a", tmp_path, pool="nowhere")))


def test_a_spec_names_a_shape_or_a_pool_not_both(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        SandboxSpec("a", tmp_path, vm=SHAPE, pool="warm")


def test_a_clone_has_the_pools_shape_and_its_agents_request(tmp_path: Path) -> None:
    agent = SandboxSpec("a", tmp_path, env={"K": "v"}, cpu_seconds=7, pids=33, pool="warm")

    async def go(backend: FakeVmBackend) -> SandboxSpec:
        async with backend:
            backend.configure_pools([POOL])
            vm = await backend.create(agent)
            await backend.destroy(vm)
            return vm.spec

    backend = FakeVmBackend()
    assert asyncio.run(go(backend)) is agent
    assert backend.fake.snapshots == [("/recipes/tiny.yaml", 192, 2)]


def test_closing_the_backend_stops_its_pools_vms() -> None:
    backend = FakeVmBackend()
    backend.configure_pools([PoolConfig("warm", SHAPE, warm=2, maximum=4)])

    async def go() -> int:
        async with backend:
            pool = await backend.pool("warm")
            await asyncio.gather(*pool._tasks)  # the refill under way
            return len(backend.fake.running())

    assert asyncio.run(go()) == 2
    assert backend.fake.running() == []
    assert backend.pools == {}

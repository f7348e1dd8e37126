"""A warm pool resized or drained live (GitOps): ready clones follow, busy VMs are never killed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from luminaguard.gitops.applied import AppliedObject, Condition
from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.vm.image.build import GuestImage
from luminaguard.hypervisor.vm.machine import Snapshot
from luminaguard.hypervisor.vm.pool import VmPool
from tests.hypervisor.fake_machine import FakeMachine

IMAGE = GuestImage(kernel=Path("/k"), initrd=Path("/i"), key="k")


def pool(machine: FakeMachine, warm: int, maximum: int = 8) -> VmPool:
    snapshot = Snapshot(IMAGE, 64, 1, Path("/nonexistent.ram"), Path("/nonexistent"))
    return VmPool("p", snapshot, warm, maximum, machine.restore)


async def settled(made: VmPool) -> None:
    while made.refilling:
        await asyncio.sleep(0.01)


def test_a_bigger_pool_refills_a_smaller_one_kills_only_ready_clones(tmp_path: Path) -> None:
    machine = FakeMachine()

    async def scenario() -> None:
        made = pool(machine, 1)
        made.refill()
        await settled(made)
        busy = await made.acquire(SandboxSpec(name="a", workdir=tmp_path))
        await settled(made)
        made.resize(3, 8)
        await settled(made)
        assert len(made.ready) == 3
        made.resize(1, 8)
        assert len(made.ready) == 1 and made.busy == [busy]
        assert busy.process is not None and busy.process.poll() is None  # busy: untouched
        made.drain()
        assert made.ready == [] and busy.process.poll() is None
        await settled(made)
        assert made.ready == []  # a drained pool does not refill
        made.release(busy)
        assert machine.running() == []
        await made.close()

    asyncio.run(scenario())


def test_clones_restored_after_the_pool_shrank_are_not_kept(tmp_path: Path) -> None:
    machine = FakeMachine()

    async def scenario() -> None:
        made = pool(machine, 3)
        made.refill()
        assert made.refilling == 3
        made.resize(0, 8)  # while the three restores are under way
        await settled(made)
        assert made.ready == [] and machine.running() == []
        await made.close()

    asyncio.run(scenario())


def test_the_maximum_bounds_ready_clones_when_it_shrinks(tmp_path: Path) -> None:
    machine = FakeMachine()

    async def scenario() -> None:
        made = pool(machine, 4)
        made.refill()
        await settled(made)
        made.resize(4, 2)
        assert len(made.ready) == 2 and made.maximum == 2
        await made.close()

    asyncio.run(scenario())


def test_a_live_pool_of_another_size_is_drifted() -> None:
    from luminaguard.server.api_gitops import _pool_drift

    machine = FakeMachine()
    made = pool(machine, 2)
    spec = {"image": "img", "warm": 2, "max": 8}
    assert _pool_drift(made, spec) == "0 of 2 warm clones are ready or coming"
    made.warm = 3
    assert "keeps 3 warm (max 8), not 2 (8)" in str(_pool_drift(made, spec))
    assert _pool_drift(None, spec) is None
    assert AppliedObject("Pool", "p", spec, "", "", "", 0, Condition.READY, "", {}).key == (
        "Pool",
        "p",
    )

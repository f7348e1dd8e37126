"""What an agent's sandbox is made of (mounts, limits, environment, VM) and its pool's setup."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from luminaguard.compiler.plan import Plan, PlannedAgent, PlannedPool
from luminaguard.config.models import ImageSpec
from luminaguard.hypervisor.base import Mount, PoolConfig, SandboxSpec, VmShape
from luminaguard.hypervisor.vm.image.recipe import find_recipe
from luminaguard.scheduler.secrets import resolve


def mounts_of(agent: PlannedAgent) -> tuple[Mount, ...]:
    """The agent's mounts, sources made absolute against the folder of its file.

    The folder is resolved (it is the author's); the source's own path is only
    normalised, never resolved: it may lie below a folder a sandbox writes, where a step
    can plant a link. The sandbox then refuses a source that passes through a link, and
    a card reads none of it.
    """
    base = Path(agent.base_dir).resolve()
    return tuple(
        Mount(Path(os.path.normpath(base / m.source)), m.target, m.read_only)
        for m in agent.spec.mounts
    )


def vm_shape(image: ImageSpec, base_dir: str) -> VmShape:
    """What a VM of the Image boots: its recipe (found from ``base_dir``), memory, vCPUs."""
    recipe = find_recipe(image.rootfs, [Path(base_dir)])
    return VmShape(recipe, image.memory_mib, image.vcpus)


def pool_config(name: str, pool: PlannedPool) -> PoolConfig:
    """The configuration of the pool ``name``: its image's shape, its warm and max."""
    return PoolConfig(name, vm_shape(pool.image, pool.base_dir), pool.spec.warm, pool.spec.max)


def sandbox_spec(
    name: str, agent: PlannedAgent, workdir: Path, environ: Mapping[str, str]
) -> SandboxSpec:
    """What the agent asks for: work folder, mounts, limits, environment, VM or pool.

    Secrets in its environment are resolved from ``environ``. A pooled agent names its
    pool (whose shape is the pool's); an agent with an image asks for that VM.
    """
    limits, image, pool = agent.spec.limits, agent.image, agent.spec.pool
    return SandboxSpec(
        name=name, workdir=workdir, mounts=mounts_of(agent),
        env=resolve(agent.spec.env, environ, "env"),
        memory_mib=limits.memory_mib, cpu_seconds=limits.cpu_seconds, pids=limits.pids,
        cpus=limits.cpus, disk_mib=limits.disk_mib,
        network=image is not None and image.network != "none",
        egress=tuple(image.egress) if image else (),
        vm=vm_shape(image, agent.base_dir) if image and not pool else None,
        pool=pool,
    )  # fmt: skip


def absolute_agent(agent: PlannedAgent) -> PlannedAgent:
    """The agent with its ``base_dir`` made absolute."""
    return agent.model_copy(update={"base_dir": str(Path(agent.base_dir).resolve())})


def absolute_pool(pool: PlannedPool) -> PlannedPool:
    """The pool with its ``base_dir`` made absolute."""
    return pool.model_copy(update={"base_dir": str(Path(pool.base_dir).resolve())})


def absolute_plan(plan: Plan) -> Plan:
    """The plan with each ``base_dir`` made absolute, so runs resume from anywhere."""
    agents = {name: absolute_agent(agent) for name, agent in plan.agents.items()}
    pools = {name: absolute_pool(pool) for name, pool in plan.pools.items()}
    return plan.model_copy(update={"agents": agents, "pools": pools})

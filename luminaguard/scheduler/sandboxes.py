"""What an agent's sandbox is made of: its mounts, limits, environment and VM image."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from luminaguard.compiler.plan import Plan, PlannedAgent
from luminaguard.hypervisor.base import Mount, SandboxSpec
from luminaguard.hypervisor.vm.image.recipe import find_recipe
from luminaguard.scheduler.secrets import resolve


def mounts_of(agent: PlannedAgent) -> tuple[Mount, ...]:
    """The agent's mounts with sources resolved against the folder of its file."""
    base = Path(agent.base_dir)
    return tuple(
        Mount((base / m.source).resolve(), m.target, m.read_only) for m in agent.spec.mounts
    )


def sandbox_spec(
    name: str, agent: PlannedAgent, workdir: Path, environ: Mapping[str, str]
) -> SandboxSpec:
    """The sandbox of one agent: work folder, mounts, environment with secrets resolved."""
    limits = agent.spec.limits
    env = resolve(agent.spec.env, environ, "env")
    pool, image = agent.pool, agent.image
    recipe = find_recipe(image.rootfs, [Path(agent.base_dir)]) if image else None
    spec = SandboxSpec(
        name=name, workdir=workdir, mounts=mounts_of(agent), env=env,
        memory_mib=limits.memory_mib, cpu_seconds=limits.cpu_seconds, pids=limits.pids,
        cpus=limits.cpus, disk_mib=limits.disk_mib,
        recipe=recipe,
        pool=agent.spec.pool, warm=pool.warm if pool else 0, pool_max=pool.max if pool else 8,
    )  # fmt: skip
    if image is None:
        return spec
    return replace(
        spec, vm_memory_mib=image.memory_mib, vcpus=image.vcpus,
        network=image.network != "none", egress=tuple(image.egress),
    )  # fmt: skip


def absolute_agent(agent: PlannedAgent) -> PlannedAgent:
    """The agent with its ``base_dir`` made absolute."""
    return agent.model_copy(update={"base_dir": str(Path(agent.base_dir).resolve())})


def absolute_plan(plan: Plan) -> Plan:
    """The plan with each agent's ``base_dir`` made absolute, so runs resume from anywhere."""
    agents = {name: absolute_agent(agent) for name, agent in plan.agents.items()}
    return plan.model_copy(update={"agents": agents})

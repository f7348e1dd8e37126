"""``SandboxSet``: agents' sandboxes on one backend, created on first use, destroyed together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

from luminaguard.compiler.plan import PlannedAgent, PlannedPool
from luminaguard.hypervisor.base import (
    Backend,
    BackendError,
    PoolingBackend,
    SandboxHandle,
    SandboxSpec,
)
from luminaguard.scheduler.sandboxes import pool_config, sandbox_spec


def check_boundary(name: str, agent: PlannedAgent, backend: Backend) -> None:
    """Refuse an agent that asks for a micro-VM (a pool or an image) on a backend that is not one.

    A weaker boundary never stands in for the one asked for: the agent's steps fail
    (and ``lock`` starts none of its servers) until a VM backend is chosen.
    """
    wanted = agent.spec.pool or agent.spec.image
    if wanted and not backend.micro_vm:
        raise BackendError(
            f"agent {name!r} asks for a micro-VM ({wanted}); the {backend.name} backend is"
            " a weaker boundary and does not stand in for one: choose a VM backend"
        )


class SandboxSet:
    """One sandbox per agent on one backend: what a run's drive, or ``lock``, works in.

    A sandbox is created when its agent first needs one; a pooled agent's pool is
    configured on the backend (once, from the plan's pools) before its first clone.
    ``aclose`` destroys them all; the backend itself stays open (its opener closes it).
    """

    def __init__(
        self,
        backend: Backend,
        pools: Mapping[str, PlannedPool],
        workdir: Callable[[str], Path],
        environ: Mapping[str, str],
    ) -> None:
        self.backend = backend
        self.pools = pools
        self.workdir = workdir
        self.environ = environ
        self.handles: dict[str, SandboxHandle] = {}
        self._creating: dict[str, asyncio.Lock] = {}

    async def get(self, name: str, agent: PlannedAgent) -> SandboxHandle:
        """The sandbox of the agent ``name``, created on first use."""
        async with self._creating.setdefault(name, asyncio.Lock()):
            if name not in self.handles:
                self.handles[name] = await self.backend.create(self._spec(name, agent))
        return self.handles[name]

    def _spec(self, name: str, agent: PlannedAgent) -> SandboxSpec:
        check_boundary(name, agent, self.backend)
        spec = sandbox_spec(name, agent, self.workdir(name), self.environ)
        if spec.pool is not None and isinstance(self.backend, PoolingBackend):
            self.backend.configure_pools([pool_config(spec.pool, self.pools[spec.pool])])
        return spec

    async def aclose(self) -> None:
        """Destroy every sandbox created (the backend stays open).

        Each one, even when destroying an earlier one failed or was cancelled: a sandbox
        skipped keeps the agent's processes (its servers, what its steps left) running
        after the drive, beside the next drive's sandbox on the same work folder. The
        first failure is raised once every sandbox was destroyed.
        """
        handles = list(self.handles.values())
        self.handles.clear()
        failure: BaseException | None = None
        for handle in handles:
            try:
                await self.backend.destroy(handle)
            except BaseException as exc:  # a cancellation included: raised below
                failure = failure or exc
        if failure is not None:
            raise failure

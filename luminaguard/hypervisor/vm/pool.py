"""Warm pools of micro-VMs: clones restored from one snapshot, each serving one task.

``acquire`` hands out a ready clone (or restores one on the spot when none is ready),
bound to the agent that asked for it (its environment and limits);
the pool then refills in the background up to ``warm`` without passing ``max`` VMs in
all. A clone that fails to restore is replaced by another, up to ``RESTORE_ATTEMPTS``
tries, each failure logged. A VM is destroyed after its task: clones are never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from luminaguard.hypervisor.base import BackendError, SandboxSpec
from luminaguard.hypervisor.vm.machine import Snapshot, Vm
from luminaguard.hypervisor.vm.retry import tried

#: How a pool gets a clone: the Machine's restore.
Restore = Callable[[Snapshot, SandboxSpec], Awaitable[Vm]]
RESTORE_ATTEMPTS = 3
log = logging.getLogger(__name__)


def memory_mib(vm: Vm, field: str = "Rss") -> int:
    """A VM's resident memory (``Rss``), its proportional share (``Pss``) or its own pages.

    With ``Pss``, pages shared copy-on-write with other clones count once in all;
    ``Private`` counts only the pages no other process maps (what one more clone costs).
    """
    if vm.process is None:
        return 0
    try:
        rollup = open(f"/proc/{vm.process.pid}/smaps_rollup").read()  # noqa: SIM115
    except OSError:
        return 0
    fields = {line.split(":")[0]: line.split() for line in rollup.splitlines()[1:]}
    names = ("Private_Clean", "Private_Dirty") if field == "Private" else (field,)
    return sum(int(fields[name][1]) for name in names if name in fields) // 1024


@dataclass
class VmPool:
    """Clones of one snapshot, kept warm."""

    name: str
    snapshot: Snapshot
    warm: int
    maximum: int
    restore: Restore
    ready: list[Vm] = field(default_factory=list)
    busy: list[Vm] = field(default_factory=list)
    refilling: int = 0
    latencies: list[float] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def _total(self) -> int:
        return len(self.ready) + len(self.busy) + self.refilling

    def refill(self) -> None:
        """Start restoring clones until ``warm`` are ready (never more than ``max`` in all)."""
        while len(self.ready) + self.refilling < self.warm and self._total() < self.maximum:
            self.refilling += 1
            task = asyncio.get_running_loop().create_task(self._add())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def resize(self, warm: int, maximum: int) -> None:
        """Keep ``warm`` clones ready, at most ``maximum`` VMs in all, from now on.

        A smaller pool kills ready clones it no longer needs; a busy VM is never
        touched (it goes when its task ends). A larger one refills.
        """
        self.warm, self.maximum = warm, max(maximum, 1)
        while len(self.ready) > self.warm or (self.ready and self._total() > self.maximum):
            self.ready.pop().kill()
        self.refill()

    def drain(self) -> None:
        """Keep nothing ready: the ready clones go, busy VMs finish their tasks."""
        self.resize(0, self.maximum)

    async def _restore_once(self) -> Vm:
        started = time.perf_counter()
        spec = SandboxSpec(name=self.name, workdir=self.snapshot.state)
        vm = await self.restore(self.snapshot, spec)
        vm.pool = self
        self.latencies.append(time.perf_counter() - started)
        return vm

    async def _restore(self) -> Vm:
        """A new clone; one that fails to restore is replaced (``RESTORE_ATTEMPTS`` in all)."""
        what = f"restoring a clone for pool {self.name!r}"
        return await tried(self._restore_once, RESTORE_ATTEMPTS, BackendError, what, log)

    async def _add(self) -> None:
        try:
            vm = await self._restore()
            if len(self.ready) < self.warm:
                self.ready.append(vm)
            else:  # the pool shrank meanwhile
                vm.kill()
        except BackendError as exc:  # counted as missing; the next acquire restores on the spot
            log.warning("pool %r could not refill: %s", self.name, exc)
        finally:
            self.refilling -= 1

    async def acquire(self, spec: SandboxSpec) -> Vm:
        """A clone for the agent of ``spec``: a warm one if ready, else restored now.

        The clone is bound to ``spec``: clones are restored before anyone asks for them,
        with a placeholder spec, and the agent's environment and limits are what its
        commands and servers must run with.
        """
        if self.ready:
            vm = self.ready.pop(0)
        elif self._total() >= self.maximum:
            raise BackendError(f"pool {self.name!r} is at its maximum of {self.maximum} VMs")
        else:
            vm = await self._restore()
        vm.spec = spec
        self.busy.append(vm)
        self.refill()
        return vm

    def release(self, vm: Vm) -> None:
        """The task is done: the VM goes (clones are never reused)."""
        with contextlib.suppress(ValueError):
            self.busy.remove(vm)
        vm.kill()

    def status(self) -> dict[str, Any]:
        """Warm, busy, refilling, restore latency p50/p99, memory of the VMs."""
        latencies = sorted(self.latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None
        return {
            "warm": len(self.ready),
            "busy": len(self.busy),
            "refilling": self.refilling,
            "restore_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "restore_p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
            "rss_mib": sum(memory_mib(vm) for vm in self.ready + self.busy),
            "pss_mib": sum(memory_mib(vm, "Pss") for vm in self.ready + self.busy),
        }

    async def close(self) -> None:
        """Stop refilling and destroy every VM of the pool."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for vm in self.ready + self.busy:
            vm.kill()
        self.ready.clear()
        self.busy.clear()

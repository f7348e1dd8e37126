"""Which pending steps to look at next: those whose needs changed since the last look.

The loop used to scan every step of the plan after each step ended, which made a chain
of n steps cost n² checks. Here each step is looked at again only when one of its
needs changes state (or when it waited for a free slot), in plan order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping

from luminaguard.compiler.plan import Plan, PlannedStep
from luminaguard.scheduler.states import StepState
from luminaguard.scheduler.store import StepRecord


class Readiness:
    """Pending steps, the steps that need each step, and which to look at next."""

    def __init__(self, plan: Plan, states: Mapping[str, StepRecord]) -> None:
        self.steps = {step.id: step for step in plan.steps}
        self.order = {step.id: index for index, step in enumerate(plan.steps)}
        self.dependents: dict[str, list[str]] = {}
        for step in plan.steps:
            for need in step.needs:
                self.dependents.setdefault(need, []).append(step.id)
        self.pending = {
            step.id for step in plan.steps if states[step.id].state == StepState.PENDING
        }
        self.dirty = set(self.pending)
        self.deferred: set[str] = set()

    def changed(self, step_id: str) -> None:
        """``step_id`` changed state: look at the pending steps that need it again."""
        self.dirty.update(d for d in self.dependents.get(step_id, ()) if d in self.pending)

    def settled(self, step_id: str) -> None:
        """``step_id`` left pending (started, or skipped): it is not looked at again."""
        self.pending.discard(step_id)

    def defer(self, step_id: str) -> None:
        """``step_id`` could start but no slot was free: look at it after the next change."""
        self.deferred.add(step_id)

    def examine(self) -> Iterator[PlannedStep]:
        """The pending steps to look at, in plan order, including any marked meanwhile."""
        heap: list[tuple[int, str]] = []
        while True:
            for step_id in self.dirty:
                heapq.heappush(heap, (self.order[step_id], step_id))
            self.dirty.clear()
            if not heap:
                break
            _, step_id = heapq.heappop(heap)
            if step_id in self.pending:
                yield self.steps[step_id]
        self.dirty, self.deferred = self.deferred, set()

"""Which pending steps can start, or must be skipped, kept up to date step by step.

The loop used to look at every step of the plan after each step ended (n² checks for a
chain of n steps), then at every dependent of the step that ended, each with all its
needs (n² for a step needing n others), and again at every step waiting for a slot
(n² for a wide fan-out). Here each pending step keeps the count of its needs that have
not succeeded: a step ending touches only the steps that need it, once each, and a
step is offered when its count reaches zero (to start) or a need of it cannot succeed
(to be skipped), in plan order. ``checks`` counts the needs looked at, for tests that
bound the work per step.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping

from luminaguard.compiler.plan import Plan, PlannedStep
from luminaguard.scheduler.states import StepState
from luminaguard.scheduler.store import StepRecord


class Readiness:
    """Pending steps, their unmet needs, and which can start or must be skipped now."""

    def __init__(self, plan: Plan, states: Mapping[str, StepRecord]) -> None:
        self.steps = {step.id: step for step in plan.steps}
        self.order = {step.id: index for index, step in enumerate(plan.steps)}
        self.dependents: dict[str, list[str]] = {}
        for step in plan.steps:
            for need in step.needs:
                self.dependents.setdefault(need, []).append(step.id)
        self.pending = {s.id for s in plan.steps if states[s.id].state is StepState.PENDING}
        #: per pending step: how many of its needs have not succeeded (yet)
        self.unmet: dict[str, int] = {}
        #: pending steps that must be skipped: a need of theirs cannot succeed
        self.blocked: set[str] = set()
        self.ready: list[tuple[int, str]] = []  # a heap, in plan order
        self.doomed: list[tuple[int, str]] = []  # a heap, in plan order
        self.checks = 0
        for step_id in sorted(self.pending, key=self.order.__getitem__):
            self._count(self.steps[step_id], states)

    def _count(self, step: PlannedStep, states: Mapping[str, StepRecord]) -> None:
        unmet = 0
        for need in step.needs:
            self.checks += 1
            state = states[need].state
            if state.blocks_dependents:
                self.blocked.add(step.id)
            unmet += state is not StepState.SUCCEEDED
        self.unmet[step.id] = unmet
        if step.id in self.blocked:
            heapq.heappush(self.doomed, (self.order[step.id], step.id))
        elif unmet == 0:
            heapq.heappush(self.ready, (self.order[step.id], step.id))

    def changed(self, step_id: str, state: StepState) -> None:
        """``step_id`` is now in ``state``: update the pending steps that need it."""
        if state is not StepState.SUCCEEDED and not state.blocks_dependents:
            return  # waiting (for a person, or to run again): its dependents wait too
        for dependent in self.dependents.get(step_id, ()):
            self.checks += 1
            if dependent not in self.pending:
                continue
            key = (self.order[dependent], dependent)
            if state.blocks_dependents:
                if dependent not in self.blocked:
                    self.blocked.add(dependent)
                    heapq.heappush(self.doomed, key)
                continue
            self.unmet[dependent] -= 1
            if self.unmet[dependent] == 0 and dependent not in self.blocked:
                heapq.heappush(self.ready, key)

    def settled(self, step_id: str) -> None:
        """``step_id`` left pending (started, or skipped): it is not offered again."""
        self.pending.discard(step_id)

    def to_skip(self) -> Iterator[PlannedStep]:
        """Pending steps a need of which cannot succeed, in plan order.

        Includes those marked meanwhile (a skipped step's dependents, once ``changed``).
        """
        while self.doomed:
            _, step_id = heapq.heappop(self.doomed)
            if step_id in self.pending:
                yield self.steps[step_id]

    def next_ready(self) -> PlannedStep | None:
        """The first pending step (in plan order) whose needs all succeeded, if any.

        It stays offered until it is ``settled``.
        """
        while self.ready:
            _, step_id = self.ready[0]
            if step_id in self.pending and step_id not in self.blocked:
                return self.steps[step_id]
            heapq.heappop(self.ready)
        return None

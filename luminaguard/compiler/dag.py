"""The step graph of a workload: unknown needs and cycles refused, a deterministic order.

Whether a step needs another transitively is answered for the references that exist
only, in batches over the topological order (``StepGraph.unneeded``): storing every
step's ancestors made compile quadratic in time and memory (10,000 steps, 2.3 GB).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from luminaguard.config.diagnostics import Diagnostic
from luminaguard.config.models import Step
from luminaguard.config.validate import Document, did_you_mean

#: Targets answered per pass over the graph: one pass costs O(steps + needs) operations
#: on integers of this many bits, so the memory of a pass stays linear in the steps.
_TARGETS_PER_PASS = 1024


@dataclass(frozen=True)
class StepGraph:
    """Steps in execution order (declaration order among the ready) and their known needs."""

    order: list[str]
    needs: dict[str, tuple[str, ...]]
    position: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.position:
            self.position.update((name, index) for index, name in enumerate(self.order))

    def unneeded(self, queries: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The ``(step, ref)`` pairs where ``step`` does not need ``ref``, even transitively.

        Direct needs and refs that do not come earlier in the order are answered at once;
        the rest in passes over the order, each for up to ``_TARGETS_PER_PASS`` refs.
        """
        missing: set[tuple[str, str]] = set()
        deferred: dict[str, list[str]] = {}
        for step, ref in queries:
            if ref in self.needs[step]:
                continue
            if self.position.get(ref, len(self.order)) >= self.position[step]:
                missing.add((step, ref))
            else:
                deferred.setdefault(ref, []).append(step)
        targets = sorted(deferred, key=self.position.__getitem__)
        for start in range(0, len(targets), _TARGETS_PER_PASS):
            chunk = targets[start : start + _TARGETS_PER_PASS]
            reach = self._reach(chunk)
            for bit, ref in enumerate(chunk):
                missing.update((s, ref) for s in deferred[ref] if not reach[s] >> bit & 1)
        return missing

    def _reach(self, targets: list[str]) -> dict[str, int]:
        """For each step from the first target on, a bitset of the targets it needs."""
        own = {ref: 1 << bit for bit, ref in enumerate(targets)}
        reach: dict[str, int] = {}
        for name in self.order[self.position[targets[0]] :]:
            bits = 0
            for need in self.needs[name]:
                bits |= reach.get(need, 0) | own.get(need, 0)
            reach[name] = bits
        return reach


def _cycles(steps: dict[str, Step]) -> list[list[str]]:
    """Every distinct cycle found by depth-first search, each as a closed path."""
    found: list[list[str]] = []
    seen_sets: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for need in steps[node].needs:
            if need not in steps:
                continue
            if state.get(need) == 1:
                cycle = [*stack[stack.index(need) :], need]
                if frozenset(cycle) not in seen_sets:
                    seen_sets.add(frozenset(cycle))
                    found.append(cycle)
            elif need not in state:
                visit(need)
        stack.pop()
        state[node] = 2

    for name in steps:
        if name not in state:
            visit(name)
    return found


def _order(steps: dict[str, Step]) -> list[str]:
    position = {name: index for index, name in enumerate(steps)}
    waiting = {name: len(set(step.needs)) for name, step in steps.items()}
    dependants: dict[str, list[str]] = {name: [] for name in steps}
    for name, step in steps.items():
        for need in set(step.needs):
            dependants[need].append(name)
    ready = [(position[name], name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for child in dependants[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (position[child], child))
    return order


def _duplicate_ids(document: Document, steps: list[Step]) -> list[Diagnostic]:
    where = document.source.locations
    problems: list[Diagnostic] = []
    first: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step.id in first:
            origin = where.value(("spec", "steps", first[step.id], "id"))
            message = f"duplicate step id {step.id!r} (first defined at {origin})"
            problems.append(Diagnostic(where.value(("spec", "steps", index, "id")), message))
        first.setdefault(step.id, index)
    return problems


def _unknown_needs(document: Document, steps: list[Step]) -> list[Diagnostic]:
    where = document.source.locations
    problems: list[Diagnostic] = []
    first = {step.id: index for index, step in enumerate(steps)}
    for index, step in enumerate(steps):
        for n, need in enumerate(step.needs):
            if need not in first:
                hint = did_you_mean(need, list(first)) or f" (steps: {', '.join(first)})"
                at = where.value(("spec", "steps", index, "needs", n))
                problems.append(
                    Diagnostic(at, f"step {step.id!r} needs unknown step {need!r}{hint}")
                )
    return problems


def _known_needs(step: Step, known: set[str]) -> Step:
    """The step with its unknown needs left out (itself, not a copy, when there are none)."""
    if known.issuperset(step.needs):
        return step
    return step.model_copy(update={"needs": [n for n in step.needs if n in known]})


def build_graph(document: Document, steps: list[Step]) -> tuple[StepGraph | None, list[Diagnostic]]:
    """Order the steps of a workload and report what is wrong with the graph.

    Unknown ``needs`` are reported and left out, so that later checks still run;
    duplicate ids and cycles leave no order at all (None).
    """
    problems = _duplicate_ids(document, steps)
    if problems:
        return None, problems
    problems = _unknown_needs(document, steps)
    known = {step.id for step in steps}
    steps = [_known_needs(step, known) for step in steps]
    by_id = {step.id: step for step in steps}
    index = {step.id: i for i, step in enumerate(steps)}
    cycles = _cycles(by_id)
    for cycle in cycles:
        where = document.source.locations.value(("spec", "steps", index[cycle[0]], "needs"))
        message = f"dependency cycle: {' -> '.join(cycle)} (each step needs the next)"
        problems.append(Diagnostic(where, message))
    if cycles:
        return None, problems
    needs = {name: tuple(dict.fromkeys(step.needs)) for name, step in by_id.items()}
    return StepGraph(_order(by_id), needs), problems

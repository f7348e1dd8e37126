"""Prometheus metrics of a server, in a registry of its own.

Counts are read from the store when scraped (runs by state, steps by state, pending
approvals and the oldest one's age, warm and busy VMs of each pool); latencies are
histograms fed by the event hub: how long a request waited for its decision, how long
a step ran (from ``step.started`` to its end).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from luminaguard.scheduler.states import ApprovalState, RunState, StepState
from luminaguard.scheduler.store import RunStore
from luminaguard.server.events import Event

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_FINAL = {f"step.{state}" for state in StepState if state.is_final or state is StepState.UNKNOWN}
_DECIDED = {f"approval.{s}" for s in (ApprovalState.APPROVED, ApprovalState.DENIED, "expired")}


class _StoreCollector(Collector):
    """Gauges read from the store (and the backends' pools) at each scrape."""

    def __init__(self, store: RunStore, pools: Callable[[], Mapping[str, Any]]) -> None:
        self.store = store
        self.pools = pools

    def collect(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily("luminaguard_runs", "Runs by state", labels=["state"])
        counts = dict.fromkeys(RunState, 0)
        for state in self.store.run_states().values():
            counts[state] += 1
        for state, count in counts.items():
            runs.add_metric([state.value], count)
        yield runs
        steps = GaugeMetricFamily("luminaguard_steps", "Steps by state", labels=["state"])
        rows = self.store.db.execute("SELECT state, COUNT(*) FROM steps GROUP BY state")
        found = {row[0]: row[1] for row in rows}
        for step_state in StepState:
            steps.add_metric([step_state.value], found.get(step_state.value, 0))
        yield steps
        yield from self._approvals()
        yield from self._pools()

    def _approvals(self) -> Iterator[Metric]:
        pending = self.store.approvals(ApprovalState.PENDING)
        yield GaugeMetricFamily(
            "luminaguard_approvals_pending", "Approval requests waiting", value=len(pending)
        )
        oldest = min((r.requested for r in pending), default=None)
        age = time.time() - oldest if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "luminaguard_approval_oldest_age_seconds", "Age of the oldest pending request", age
        )

    def _pools(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "luminaguard_pool_vms", "VMs of each warm pool", labels=["pool", "state"]
        )
        for name, pool in self.pools().items():
            status = pool.status()
            family.add_metric([name, "warm"], status.get("warm", 0))
            family.add_metric([name, "busy"], status.get("busy", 0))
        yield family


class Metrics:
    """The server's registry: gauges from the store, latency histograms from events."""

    def __init__(self, store: RunStore, pools: Callable[[], Mapping[str, Any]]) -> None:
        self.store = store
        self.registry = CollectorRegistry()
        self.registry.register(_StoreCollector(store, pools))
        self.decision = Histogram(
            "luminaguard_decision_seconds",
            "Time from an approval request to its decision",
            registry=self.registry,
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
        )
        self.step = Histogram(
            "luminaguard_step_seconds",
            "Time a step ran, by how it ended",
            ["outcome"],
            registry=self.registry,
        )
        self._started: dict[tuple[str, str | None], float] = {}

    def saw(self, event: Event) -> None:
        """Feed one event (the hub calls this for each)."""
        key = (event.run_id, event.step_id)
        if event.kind == "step.started":
            self._started[key] = event.time
        elif event.kind in _FINAL and key in self._started:
            began = self._started.pop(key)
            self.step.labels(event.kind.split(".", 1)[1]).observe(max(0.0, event.time - began))
        elif event.kind in _DECIDED and event.step_id is not None:
            self._decided(event)

    def _decided(self, event: Event) -> None:
        requests = self.store.approvals(None, event.run_id)
        asked = [r.requested for r in requests if r.step_id == event.step_id and r.decided]
        if asked:
            self.decision.observe(max(0.0, event.time - asked[-1]))

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)

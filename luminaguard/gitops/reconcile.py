"""``Reconciler``: one pass that makes what runs follow the source.

A pass fetches the source, builds the desired state (everything validated and compiled
first), compares it with what was applied and applies the difference through a
``Runtime``: pools resized or drained, the policies in force swapped in one step,
images rebuilt, workloads with ``trigger: {on: change}`` started once per change of
their compiled plan. A source that cannot be fetched or does not compile applies
nothing: the source is ``Stalled`` with the reason (file:line:column for a document),
and the last good revision stays in force. What disappeared from the source is removed
only with ``prune``; otherwise it is reported and kept, as Argo CD does by default.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from luminaguard.compiler.plan import Plan
from luminaguard.config.diagnostics import ConfigError
from luminaguard.errors import LuminaGuardError
from luminaguard.gitops.applied import AppliedState, Condition
from luminaguard.gitops.desired import Desired, DesiredObject, desired_state
from luminaguard.gitops.diff import Change, diff
from luminaguard.gitops.source import Snapshot, Source

log = logging.getLogger("luminaguard.gitops")


class Runtime(Protocol):
    """What applying a change does to what runs (a server's backends, or nothing live)."""

    def apply_pool(self, name: str, spec: dict[str, Any] | None) -> None:
        """Resize (or start) the pool to ``spec``; ``None`` drains and removes it."""
        ...

    def apply_policies(self, revision: str, policies: dict[str, dict[str, Any]]) -> None:
        """Put these policies in force, all at once (never a mix with the old ones)."""
        ...

    def build_image(self, name: str, recipe: Path) -> None:
        """Build the image from its recipe (new, or the recipe changed)."""
        ...

    def start(self, plan: Plan, run_id: str, why: str) -> None:
        """Start a run of ``plan`` as ``run_id`` (a new id)."""
        ...


@dataclass
class Outcome:
    """What one pass did."""

    revision: str | None
    state: Condition
    reason: str = ""
    changes: list[Change] = field(default_factory=list)
    started: dict[str, str] = field(default_factory=dict)  # workload -> run id
    kept: list[str] = field(default_factory=list)  # removed from the source, not pruned


def load(snapshot: Snapshot) -> Desired:
    """The desired state of a snapshot (``ConfigError`` when it does not compile)."""
    return desired_state(snapshot.root, snapshot.url, snapshot.revision, snapshot.revision_of)


def error_text(exc: BaseException) -> str:
    """A failure as recorded in the status: each diagnostic on its own line."""
    if isinstance(exc, ConfigError):
        return "\n".join(str(d) for d in exc.diagnostics)
    return str(exc)


class Reconciler:
    """Reconciles one source into one state folder through one runtime."""

    def __init__(
        self,
        source: Source,
        applied: AppliedState,
        runtime: Runtime,
        prune: bool = False,
        fetch: Callable[[Source], Snapshot] | None = None,
    ) -> None:
        self.source = source
        self.applied = applied
        self.runtime = runtime
        self.prune = prune
        self._fetch = fetch or (lambda source: source.fetch())
        #: the desired state last applied (its plans and schedules), none before a pass
        self.desired: Desired | None = None

    def plan(self) -> tuple[Desired, list[Change]]:
        """The desired state and what applying it would change (nothing is applied)."""
        desired = load(self._fetch(self.source))
        return desired, diff(desired, self.applied.objects())

    def reconcile(self) -> Outcome:
        """One pass; never raises for a bad source (the outcome and status say why)."""
        try:
            snapshot = self._fetch(self.source)
        except LuminaGuardError as exc:
            return self.stalled(None, exc)
        return self.reconcile_snapshot(snapshot)

    def stalled(self, attempted: str | None, exc: BaseException) -> Outcome:
        """Record that the source at ``attempted`` cannot be applied, and why."""
        reason = error_text(exc)
        self.applied.set_source(self.source.url, attempted, Condition.STALLED, reason)
        return Outcome(attempted, Condition.STALLED, reason)

    def reconcile_snapshot(self, snapshot: Snapshot) -> Outcome:
        """Apply one fetched snapshot (the fetch may run elsewhere: it blocks on git)."""
        try:
            desired = load(snapshot)
        except LuminaGuardError as exc:
            return self.stalled(snapshot.revision, exc)
        changes = diff(desired, self.applied.objects())
        outcome = Outcome(desired.revision, Condition.READY, changes=changes)
        try:
            self._apply(desired, changes, outcome)
            self.desired = desired
            self._trigger(desired, outcome)
        except Exception as exc:  # an environment failure too: recorded, the next pass retries
            log.exception("applying revision %s failed", desired.revision)
            outcome.state, outcome.reason = Condition.STALLED, error_text(exc)
        self.applied.set_source(self.source.url, desired.revision, outcome.state, outcome.reason)
        return outcome

    def _apply(self, desired: Desired, changes: list[Change], outcome: Outcome) -> None:
        if any(c.kind == "Policy" for c in changes):  # one swap for all: never a mix
            self.runtime.apply_policies(desired.revision, self._policies(desired))
        for change in changes:
            if change.action == "removed":
                self._remove(change, desired.revision, outcome)
                continue
            wanted = desired.objects[change.key]
            self._apply_one(wanted, desired)
            self.applied.record(wanted)

    def _policies(self, desired: Desired) -> dict[str, dict[str, Any]]:
        """The policies to put in force: the source's, and without ``prune`` the kept ones."""
        policies = {k[1]: o.spec for k, o in desired.objects.items() if k[0] == "Policy"}
        if not self.prune:
            for (kind, name), kept in self.applied.objects().items():
                if kind == "Policy" and name not in policies:
                    policies[name] = kept.spec
        return policies

    def _apply_one(self, wanted: DesiredObject, desired: Desired) -> None:
        if wanted.kind == "Pool":
            self.runtime.apply_pool(wanted.name, wanted.spec)
        elif wanted.kind == "Image" and wanted.name in desired.recipes:
            self.runtime.build_image(wanted.name, desired.recipes[wanted.name])

    def _remove(self, change: Change, revision: str, outcome: Outcome) -> None:
        if not self.prune:
            outcome.kept.append(f"{change.kind}/{change.name}")
            self.applied.update(change.key, Condition.READY, "removed from the source; kept")
            return
        if change.kind == "Pool":
            self.runtime.apply_pool(change.name, None)
        self.applied.remove(change.key, revision)

    def _trigger(self, desired: Desired, outcome: Outcome) -> None:
        """Start each workload with ``trigger: {on: change}`` whose plan changed.

        A workload that cannot be started is Stalled with the reason; the others go on.
        """
        applied = self.applied.objects()
        for name, plan in sorted(desired.plans.items()):
            if desired.objects[("Workload", name)].spec.get("trigger") is None:
                continue
            record = applied.get(("Workload", name))
            extra = record.extra if record is not None else {}
            try:
                started = self._trigger_one(name, plan, extra, desired.revision)
            except Exception as exc:
                why = f"not started: {error_text(exc)}"
                self.applied.update(("Workload", name), Condition.STALLED, why)
                continue
            if started is not None:
                outcome.started[name] = started

    def _trigger_one(
        self, name: str, plan: Plan, extra: dict[str, Any], revision: str
    ) -> str | None:
        """Start the plan once; the run id started (None: it ran, or was started, already).

        The intent (run id, plan hash) is recorded before the start: a pass that stopped
        after it finds it and finishes it, never starting a second run of the plan.
        """
        key = ("Workload", name)
        intent = extra.get("starting") or {}
        if intent.get("plan_hash") == plan.hash:
            run_id = str(intent["run_id"])
        elif extra.get("plan_hash") == plan.hash:
            return None  # this plan ran already: once per change
        else:
            run_id = self._free_id(name, int(extra.get("runs", 0)) + 1)
            starting = {"run_id": run_id, "plan_hash": plan.hash}
            self.applied.update(key, Condition.RECONCILING, "starting a run", starting=starting)
        started = None
        if not self.applied.run_exists(run_id):
            self.runtime.start(plan, run_id, f"trigger: revision {revision}")
            started = run_id
        runs = int(run_id.rsplit("-", 1)[1])
        self.applied.update(
            key, Condition.READY, "", plan_hash=plan.hash, run_id=run_id, runs=runs, starting=None
        )
        return started

    def _free_id(self, name: str, first: int) -> str:
        """``NAME-N`` for the first N from ``first`` that no run has (an API run may)."""
        number = first
        while self.applied.run_exists(f"{name}-{number}"):
            number += 1
        return f"{name}-{number}"

"""The server's reconciler: ``serve --source``, applied continuously.

A pass runs at start, then after each change of a folder source (watchfiles: a save is
applied within a fraction of a second) or every ``interval`` seconds for git, and on
``poke`` (the API's "reconcile now"). The fetch runs in a thread (it waits on git); the
rest runs in the event loop, which owns the store. Between passes the controller starts
the firings of scheduled workloads that are due. A pass that fails is recorded in the
status and the next one tries again; the controller itself never stops the server.

``ServerRuntime`` is what a pass changes in the server: the policies in force (one
swap), the live warm pools of its backends (resized, or drained without killing a
busy VM), images (built in a thread), and runs (submitted to the engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchfiles import awatch

from luminaguard.compiler.plan import Plan
from luminaguard.errors import LuminaGuardError
from luminaguard.gitops.applied import AppliedState, Condition
from luminaguard.gitops.reconcile import Outcome, Reconciler
from luminaguard.gitops.schedule import due, firing_id, next_firing
from luminaguard.gitops.source import FolderSource, Snapshot, Source
from luminaguard.hypervisor.vm.image.build import build
from luminaguard.hypervisor.vm.image.recipe import Recipe
from luminaguard.policy.in_force import PolicySet

if TYPE_CHECKING:
    from luminaguard.server.service import Server

log = logging.getLogger("luminaguard.gitops")
BY = {"by": "reconciler"}


class ServerRuntime:
    """Applies a pass's changes to one server."""

    def __init__(self, server: Server, applied: AppliedState) -> None:
        self.server = server
        self.applied = applied
        self.builds: set[asyncio.Future[Any]] = set()

    def apply_pool(self, name: str, spec: dict[str, Any] | None) -> None:
        """Resize the live pool of this name, or drain it (``spec`` None).

        A pool not started yet starts, when a run needs it, with its plan's size.
        """
        pool = self.server.pools().get(name)
        if pool is None:
            return
        if spec is None:
            pool.drain()
        else:
            pool.resize(int(spec.get("warm", 1)), int(spec.get("max", 8)))

    def apply_policies(self, revision: str, policies: dict[str, dict[str, Any]]) -> None:
        """Swap the policies in force, all at once."""
        self.server.policies.swap(PolicySet.build(revision, policies))

    def build_image(self, name: str, recipe: Path) -> None:
        """Build the image in a thread (the server keeps serving)."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, build, Recipe.load(recipe))
        self.builds.add(future)
        future.add_done_callback(lambda done: self._built(name, done))

    def _built(self, name: str, done: asyncio.Future[Any]) -> None:
        """A failed build is not applied: Stalled with the reason, built again next pass."""
        self.builds.discard(done)
        if done.cancelled() or done.exception() is not None:
            why = "cancelled" if done.cancelled() else str(done.exception())
            log.error("image %s: the build failed: %s", name, why)
            self.applied.invalidate(("Image", name), f"the build failed: {why}")

    def start(self, plan: Plan, run_id: str, why: str) -> None:
        """Submit the run to the engine."""
        self.server.engine.submit(plan, run_id, self.server.backend, {**BY, "how": why})


class Controller:
    """Runs the passes and the schedules of one source for one server."""

    def __init__(self, server: Server, source: Source, interval: float, prune: bool) -> None:
        self.server = server
        self.source = source
        self.interval = interval
        self.applied = AppliedState(server.store)
        self.runtime = ServerRuntime(server, self.applied)
        self.reconciler = Reconciler(source, self.applied, self.runtime, prune)
        self.last: Outcome | None = None
        self.busy = False  # a pass is under way
        self._wake = asyncio.Event()
        self._started = datetime.now(UTC)  # firings before a schedule is known: none

    def restore(self) -> None:
        """Put the policies last applied in force again (a server that restarts)."""
        policies = {k[1]: o.spec for k, o in self.applied.objects().items() if k[0] == "Policy"}
        source = self.applied.source()
        if policies and source is not None and source.revision:
            self.server.policies.swap(PolicySet.build(source.revision, policies))

    def poke(self) -> None:
        """Reconcile now."""
        self._wake.set()

    async def pass_once(self) -> Outcome:
        """Fetch (in a thread) and apply one revision."""
        self.busy = True
        try:
            snapshot: Snapshot = await asyncio.to_thread(self.source.fetch)
            self.last = self.reconciler.reconcile_snapshot(snapshot)
        except LuminaGuardError as exc:
            self.last = self.reconciler.stalled(None, exc)
        finally:
            self.busy = False
        if self.last.changes:
            log.info("applied %s: %d changes", self.last.revision, len(self.last.changes))
        return self.last

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop``; schedules fire between them.

        A folder source is watched from before the first pass to the end: a save made
        while a pass runs wakes the next one.
        """
        self.restore()
        watching = None
        if isinstance(self.source, FolderSource):
            watching = asyncio.get_running_loop().create_task(self._watch(self.source.path, stop))
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.pass_once()
                    self.fire_schedules(datetime.now(UTC))
                except Exception:  # a bug in one pass: logged, the next pass tries again
                    log.exception("a reconcile pass failed")
                await self._wait(stop)
        finally:
            if watching is not None:
                watching.cancel()
                await asyncio.gather(watching, return_exceptions=True)

    async def _watch(self, folder: Path, stop: asyncio.Event) -> None:
        """Wake a pass at each change under ``folder``."""
        with contextlib.suppress(RuntimeError):  # the folder went away: a pass says so
            async for _ in awatch(folder, debounce=50, step=10, stop_event=stop):
                self._wake.set()

    async def _wait(self, stop: asyncio.Event) -> None:
        """Until a change or poke, ``interval`` seconds, the next firing, or ``stop``."""
        waits: list[asyncio.Task[Any]] = [
            asyncio.create_task(stop.wait()),
            asyncio.create_task(self._wake.wait()),
        ]
        timeout = min(self.interval, self._until_next_firing())
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def _schedules(self) -> dict[str, str]:
        """Each scheduled workload of the revision applied: its cron (from the source)."""
        desired = self.reconciler.desired
        if desired is None:
            return {}
        return {
            name: str(desired.objects[("Workload", name)].spec["schedule"])
            for name in desired.plans
            if desired.objects[("Workload", name)].spec.get("schedule")
        }

    def _until_next_firing(self) -> float:
        now = datetime.now(UTC)
        waits = [
            (next_firing(cron, now) - now).total_seconds() for cron in self._schedules().values()
        ]
        return max(0.5, min(waits, default=self.interval))

    def _since(self, name: str) -> datetime:
        """When the workload last fired (or was applied, or this server started)."""
        record = self.applied.objects().get(("Workload", name))
        if record is not None and record.extra.get("last_fired"):
            return datetime.fromisoformat(str(record.extra["last_fired"]))
        return self._started

    def fire_schedules(self, now: datetime) -> list[str]:
        """Start each scheduled workload whose firing is due; the run ids started.

        A firing's run id is its time: one already started is not started again. The
        firing is recorded (audited) before the run starts.
        """
        started = []
        desired = self.reconciler.desired
        for name, cron in sorted(self._schedules().items()):
            at = due(cron, self._since(name), now)
            if at is None or desired is None:
                continue
            run_id = firing_id(name, at)
            self.applied.update(("Workload", name), Condition.READY, "", last_fired=at.isoformat())
            if not self.applied.run_exists(run_id):
                how = {**BY, "how": f"schedule {cron}"}
                self.server.engine.submit(desired.plans[name], run_id, self.server.backend, how)
                started.append(run_id)
        return started

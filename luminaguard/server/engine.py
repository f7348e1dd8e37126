"""``Engine``: drives every run of a state folder that can progress, many at once.

The server's heart. A run is driven by ``Runner.resume`` (so a run left running by a
crash is recovered exactly as the ``resume`` command would) while its lease is held.
A halted run is driven again as soon as a drive could move it (``movable``): a step
waits on a request that is decided now, or a pending step's needs have all ended (a
person re-ran, declined or marked done an unknown step). That is read from the store,
never remembered, so a decision made at any moment (through the API, or by
``luminaguard approve`` on the same folder, seen through ``poke``; before a restart,
seen by ``start``) is acted on. A pending request is looked at again when it expires,
so an expiry denies on time with nobody watching. A run left running by a process
that died is adopted; one a live command drives is left to it.

Steps of all runs share ``slots`` (the server's ``--concurrency``); each run has its
own limit too. ``stop`` drains: no step starts, running steps get a grace period, then
the rest is cancelled and left as a crash would leave it, for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping

from luminaguard.compiler.plan import Plan
from luminaguard.errors import LuminaGuardError
from luminaguard.hypervisor.base import Backend
from luminaguard.process import alive
from luminaguard.scheduler import decisions
from luminaguard.scheduler.lease import LeaseHeld, current_holder
from luminaguard.scheduler.redact import check_secrets
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.sandboxes import absolute_plan
from luminaguard.scheduler.secrets import environment, run_secrets
from luminaguard.scheduler.states import ApprovalState, RunState, StepState
from luminaguard.scheduler.store import ApprovalRecord, RunStore
from luminaguard.scheduler.tools import Connector, connect

log = logging.getLogger("luminaguard.server")

#: How many runs are driven at once at most (each holds a lease and a database cursor).
MAX_DRIVES = 256
#: How often in a row a run that is still movable after a drive is driven again.
REDRIVES = 3


class Engine:
    """Drives the runs of one ``RunStore``; backends come from ``backends`` by name."""

    def __init__(
        self,
        store: RunStore,
        backends: Callable[[str], Backend],
        *,
        slots: int = 16,
        per_run: int = 4,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        connector: Connector = connect,
    ) -> None:
        self.store = store
        self.backends = backends
        self.slots = asyncio.Semaphore(slots)
        self.per_run = per_run
        self.clock = clock
        self.environ = environ if environ is not None else environment()
        self.connector = connector
        self.drives: dict[str, asyncio.Task[None]] = {}
        self.runners: dict[str, Runner] = {}
        self.again: set[str] = set()
        self.cancelling: set[str] = set()
        self.needs: dict[str, dict[str, list[str]]] = {}
        #: runs a drive refused (why): not driven again by a timer, only by a change
        self.stuck: dict[str, str] = {}
        self.stopping = False
        self._expiry: asyncio.TimerHandle | None = None
        self._drives_idle = asyncio.Event()
        self._drives_idle.set()

    # --- life ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Resume every run left running, and the halted ones a decision moved meanwhile."""
        for run_id, state in self.store.run_states().items():
            try:
                if state is RunState.RUNNING or (state is RunState.HALTED and self.movable(run_id)):
                    self.schedule(run_id)
            except LuminaGuardError as exc:  # runs.db edited: the others are served
                log.error("run %s cannot be looked at: %s", run_id, exc)
        self.arm_expiry()

    async def stop(self, grace: float) -> None:
        """Start nothing more; give running steps ``grace`` seconds, then cancel the rest."""
        self.stopping = True
        if self._expiry is not None:
            self._expiry.cancel()
        for runner in self.runners.values():
            runner.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drives_idle.wait(), grace)
        for task in list(self.drives.values()):
            task.cancel()
        await asyncio.gather(*self.drives.values(), return_exceptions=True)

    # --- runs ---------------------------------------------------------------------------
    def submit(self, plan: Plan, run_id: str, backend: str, started_by: dict[str, str]) -> None:
        """Record a new run of ``plan`` on ``backend`` and start driving it.

        Raises (nothing recorded) for a run id in use or a secret too short to redact.
        """
        if self.stopping:
            raise LuminaGuardError("the server is stopping: no new runs")
        self.backends(backend)  # an unknown backend is refused before anything is recorded
        check_secrets(run_secrets(plan, self.environ))
        self.store.create_run(run_id, absolute_plan(plan), backend, started_by)
        self.schedule(run_id)

    def schedule(self, run_id: str) -> None:
        """Drive the run now, or once more when its current drive ends."""
        if self.stopping or run_id in self.cancelling:
            return
        if run_id in self.drives:
            self.again.add(run_id)
            return
        if len(self.drives) >= MAX_DRIVES:
            self.again.add(run_id)  # picked up when a drive ends
            return
        self._drives_idle.clear()
        task = asyncio.get_running_loop().create_task(self._drive(run_id))
        self.drives[run_id] = task
        # a callback, not a finally: a task cancelled before it started runs no code
        task.add_done_callback(lambda done: self._ended(run_id, done))

    async def _drive(self, run_id: str) -> None:
        for _ in range(REDRIVES):
            self.again.discard(run_id)
            if self.stopping or not await self._drive_once(run_id):
                return
            if run_id not in self.again and not self._halted_movable(run_id):
                return
        log.warning("run %s: still movable after %d drives in a row", run_id, REDRIVES)

    def _ended(self, run_id: str, task: asyncio.Task[None]) -> None:
        if self.drives.get(run_id) is task:
            del self.drives[run_id]
            self.runners.pop(run_id, None)
        self._after_drive(run_id)

    async def _drive_once(self, run_id: str) -> bool:
        """One ``resume`` of the run; False when it cannot be driven here now."""
        try:
            record = self.store.run(run_id)
            runner = Runner(
                self.store,
                self.backends(record.backend),
                concurrency=self.per_run,
                clock=self.clock,
                environ=self.environ,
                connect=self.connector,
                slots=self.slots,
            )
            self.runners[run_id] = runner
            result = await runner.resume(run_id)
        except LeaseHeld:
            return False  # a command drives it; its writes will poke us when it stops
        except LuminaGuardError as exc:
            if self.stuck.get(run_id) != str(exc):
                log.error("run %s cannot be driven: %s", run_id, exc)
            self.stuck[run_id] = str(exc)
            return False
        self.stuck.pop(run_id, None)
        log.info("run %s: %s", run_id, result.state)
        return True

    def _halted_movable(self, run_id: str) -> bool:
        """A decision arrived while the drive ended (race-free: read now, from the store)."""
        try:
            halted = self.store.run_states().get(run_id) is RunState.HALTED
            return halted and self.movable(run_id)
        except LuminaGuardError:
            return False

    def _after_drive(self, run_id: str) -> None:
        if not self.stopping:
            waiting = [r for r in self.again if r not in self.drives]
            for other in waiting[: MAX_DRIVES - len(self.drives)]:
                self.again.discard(other)
                self.schedule(other)
            self.arm_expiry()
        if not self.drives:
            self._drives_idle.set()

    async def cancel(self, run_id: str, who: str) -> None:
        """Stop the run: its running steps are killed, and nothing of it runs again.

        While its drive ends, whatever asks for the run (an approval, an expiry, a
        write elsewhere) is ignored: driven again meanwhile, it would hold the lease
        the cancel needs, and go on.
        """
        self.store.run(run_id)  # refuses an unknown run
        self.cancelling.add(run_id)
        try:
            self.again.discard(run_id)
            task = self.drives.get(run_id)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            with self.store.lease(run_id):
                cancel_steps(self.store, run_id, who)
        finally:
            self.cancelling.discard(run_id)
            self.again.discard(run_id)

    # --- changes made elsewhere -----------------------------------------------------------
    def movable(self, run_id: str) -> bool:
        """Whether a drive would move the halted run now (a decision was made about it)."""
        steps = self.store.steps(run_id)
        decided = {
            r.step_id
            for r in self.store.approvals(None, run_id)
            if r.state is not ApprovalState.PENDING
            and r.action_hash == steps[r.step_id].action_hash
        }
        needs = self._needs(run_id)
        for step_id, record in steps.items():
            if record.state is StepState.AWAITING_APPROVAL and step_id in decided:
                return True
            ended = all(steps[need].state.is_final for need in needs.get(step_id, ()))
            if record.state is StepState.PENDING and ended:
                return True
        return all(record.state.is_final for record in steps.values())

    def _needs(self, run_id: str) -> dict[str, list[str]]:
        if run_id not in self.needs:
            plan = self.store.run(run_id).plan
            self.needs[run_id] = {step.id: list(step.needs) for step in plan.steps}
        return self.needs[run_id]

    def poke(self) -> None:
        """Something may have changed the runs (a decision here or elsewhere): look."""
        if self.stopping:
            return
        for run_id, state in self.store.run_states().items():
            if run_id in self.drives:
                self.again.add(run_id)
            elif self._should_drive(run_id, state):
                self.schedule(run_id)
        self.arm_expiry()

    def _should_drive(self, run_id: str, state: RunState) -> bool:
        if state is RunState.RUNNING:
            return self._abandoned(run_id)
        if state is RunState.FAILED:  # a pending step: re-opened by `luminaguard retry`
            return any(s.state is StepState.PENDING for s in self.store.steps(run_id).values())
        return state is RunState.HALTED and self.movable(run_id)

    def _abandoned(self, run_id: str) -> bool:
        """A run left running by a process that died (not one a live command drives)."""
        holder = current_holder(self.store.db, run_id)
        # our own lease from before this start is not held any more
        return holder is not None and (holder.pid == os.getpid() or not alive(holder.pid))

    def arm_expiry(self) -> None:
        """Wake up when the next pending request expires, to deny it on time."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        pending = [
            r for r in self.store.approvals(ApprovalState.PENDING) if r.run_id not in self.stuck
        ]
        expiries = [expiry_of(self.store, request) for request in pending]
        if not expiries or self.stopping:
            return
        delay = max(0.0, min(expiries) - self.clock()) + 0.01
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        now = self.clock()
        for request in self.store.approvals(ApprovalState.PENDING):
            if request.run_id not in self.stuck and now > expiry_of(self.store, request):
                self.schedule(request.run_id)  # the runner expires it and denies the step
        self.arm_expiry()


def expiry_of(store: RunStore, request: ApprovalRecord) -> float:
    """When the request expires, as audited (runs.db may be edited); now if unaudited."""
    try:
        return decisions.as_audited(store, request).expires
    except LuminaGuardError:
        return 0.0


def cancel_steps(store: RunStore, run_id: str, who: str) -> None:
    """Settle every unfinished step of a cancelled run (call with its lease held).

    A pending request is denied; a running step (killed) or an unknown one fails; a
    pending step is skipped. The run ends ``failed``.
    """
    why = f"run cancelled by {who}"
    store.audit_event(run_id, None, "run.cancelled", {"by": who})
    for request in store.approvals(ApprovalState.PENDING, run_id):
        store.deny_step(request, who, "run cancelled", why)
    for step_id, record in store.steps(run_id).items():
        if record.state in (StepState.RUNNING, StepState.UNKNOWN):
            store.set_step(run_id, step_id, StepState.FAILED, "step.cancelled", {"by": who}, why)
        elif record.state is StepState.PENDING:
            store.set_step(run_id, step_id, StepState.SKIPPED, "step.cancelled", {"by": who}, why)
    store.set_run_state(run_id, RunState.RUNNING)
    store.set_run_state(run_id, RunState.FAILED)

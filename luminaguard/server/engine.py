"""``Engine``: drives every run of a state folder that can progress, many at once.

The server's heart. A run is driven by ``Runner.resume`` (so a run left running by a
crash is recovered exactly as the ``resume`` command would) while its lease is held.
When a drive ends with the run halted, the engine remembers the run's *decision
fingerprint* (its steps' and approval requests' states); a run whose fingerprint
changed since (an approval through the API, or ``luminaguard approve`` against the same
folder, seen through ``poke``) is driven again at once. A halted run in which a
decision waits to be acted on (``can_progress``) is driven at start, and again at once
when the decision came during its drive (a later notice of it would find the
fingerprint unchanged). A pending request is looked at again when it expires, so an
expiry denies on time with nobody watching.

Steps of all runs share ``slots`` (the server's ``--concurrency``); each run has its
own limit too. ``stop`` drains: no step starts, running steps get a grace period, then
the rest is cancelled and left as a crash would leave it, for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from luminaguard.compiler.plan import Plan
from luminaguard.errors import LuminaGuardError
from luminaguard.hypervisor.base import Backend
from luminaguard.scheduler import decisions
from luminaguard.scheduler.lease import LeaseHeld
from luminaguard.scheduler.redact import check_secrets
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.sandboxes import absolute_plan
from luminaguard.scheduler.secrets import environment, run_secrets
from luminaguard.scheduler.states import ApprovalState, RunState, StepState
from luminaguard.scheduler.store import ApprovalRecord, RunStore
from luminaguard.scheduler.tools import Connector, connect

log = logging.getLogger("luminaguard.server")

Fingerprint = tuple[tuple[Any, ...], ...]
#: How many runs are driven at once at most (each holds a lease and a database cursor).
MAX_DRIVES = 256


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
        self.seen: dict[str, Fingerprint] = {}
        self._plan_needs: dict[str, dict[str, tuple[str, ...]]] = {}
        self.stopping = False
        self._expiry: asyncio.TimerHandle | None = None
        self._drives_idle = asyncio.Event()
        self._drives_idle.set()

    # --- life ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Resume every run left running, and the halted ones a decision lets go on.

        A halted run may have been decided about while no server ran (or just before
        this one was killed): it is driven now; the others are remembered as they are.
        Then the expiry timer is armed.
        """
        for run_id, state in self.store.run_states().items():
            if state is RunState.RUNNING:
                self.schedule(run_id)
            elif state is RunState.HALTED:
                try:
                    self._halted(run_id)
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
        while not self.stopping:
            self.again.discard(run_id)
            if not await self._drive_once(run_id) or run_id not in self.again:
                break

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
            log.error("run %s cannot be driven: %s", run_id, exc)
            return False
        log.info("run %s: %s", run_id, result.state)
        return True

    def _after_drive(self, run_id: str) -> None:
        if not self.stopping:
            with contextlib.suppress(LuminaGuardError):
                if self.store.run_states().get(run_id) is RunState.HALTED:
                    self._halted(run_id)
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
        self.seen.pop(run_id, None)

    def _halted(self, run_id: str) -> None:
        """Remember a halted run's fingerprint; drive it again if a decision waits in it.

        A decision recorded by another process while the run was being driven (after its
        step halted, before the drive ended) is in the fingerprint taken now, so a
        later notice of that write would find nothing changed: the run is driven again
        at once instead. Only while each such drive changes the fingerprint: a drive
        that moved nothing is not repeated.
        """
        now = self.fingerprint(run_id)
        if self.seen.get(run_id) != now and self.can_progress(run_id):
            self.seen[run_id] = now
            self.schedule(run_id)
        else:
            self.seen[run_id] = now

    def can_progress(self, run_id: str) -> bool:
        """Whether driving the halted run would move it: something was decided meanwhile.

        True when a step awaiting approval has its request decided (or gone), when a
        pending step could start or be skipped (an unknown step approved to run again),
        or when no step waits for a person any more (one marked done, or declined).
        """
        steps = self.store.steps(run_id)
        if not any(record.state.needs_person for record in steps.values()):
            return True
        for step_id, record in steps.items():
            if record.state is StepState.AWAITING_APPROVAL:
                digest = record.action_hash
                request = self.store.approval(run_id, step_id, digest) if digest else None
                if request is None or request.state is not ApprovalState.PENDING:
                    return True
        needs = self._needs(run_id)
        for step_id, record in steps.items():
            if record.state is StepState.PENDING:
                before = [steps[need].state for need in needs.get(step_id, ())]
                if any(s.blocks_dependents for s in before) or all(
                    s is StepState.SUCCEEDED for s in before
                ):
                    return True
        return False

    def _needs(self, run_id: str) -> dict[str, tuple[str, ...]]:
        """Each step's needs (plans do not change: read once per run)."""
        if run_id not in self._plan_needs:
            try:
                plan = self.store.run(run_id).plan
            except (LuminaGuardError, ValueError):  # unreadable: a drive will say why
                return {}
            self._plan_needs[run_id] = {step.id: tuple(step.needs) for step in plan.steps}
        return self._plan_needs[run_id]

    # --- changes made elsewhere -----------------------------------------------------------
    def fingerprint(self, run_id: str) -> Fingerprint:
        """The states of the run's steps and approval requests: what a decision changes."""
        steps = tuple(sorted((k, v.state) for k, v in self.store.steps(run_id).items()))
        requests = tuple(
            sorted((r.step_id, r.action_hash, r.state) for r in self.store.approvals(None, run_id))
        )
        return (steps, requests)

    def poke(self) -> None:
        """Something may have changed the runs (a decision here or elsewhere): look."""
        if self.stopping:
            return
        for run_id, state in self.store.run_states().items():
            if run_id in self.drives:
                self.again.add(run_id)
            elif state is RunState.RUNNING:
                self.schedule(run_id)  # a command's run whose process died, or a new one
            elif state is RunState.HALTED and self.seen.get(run_id) != self.fingerprint(run_id):
                self.schedule(run_id)
        self.arm_expiry()

    def arm_expiry(self) -> None:
        """Wake up when the next pending request expires, to deny it on time."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        pending = self.store.approvals(ApprovalState.PENDING)
        expiries = [expiry_of(self.store, request) for request in pending]
        if not expiries or self.stopping:
            return
        delay = max(0.0, min(expiries) - self.clock()) + 0.01
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        now = self.clock()
        for request in self.store.approvals(ApprovalState.PENDING):
            if now > expiry_of(self.store, request):
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

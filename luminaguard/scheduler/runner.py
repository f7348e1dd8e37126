"""``Runner``: executes a plan step by step, durably, halting Red steps for approval.

Steps run in topological order, in parallel where ``needs`` allows (bounded). Every
state change is journalled in the ``RunStore`` before its effect. A Red step gets an
approval request bound to its action's content hash and halts its branch. After a
crash, ``resume`` re-runs nothing that finished; a step that was running is run
again only if it is idempotent, and is otherwise marked ``unknown`` for a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from luminaguard import space
from luminaguard.backoff import backoff
from luminaguard.compiler.plan import Plan, PlannedStep
from luminaguard.config.models import McpServer
from luminaguard.hypervisor.base import Backend, BackendError, SandboxHandle, SweepingBackend
from luminaguard.policy.action import Action, Decision
from luminaguard.scheduler import audited, decisions
from luminaguard.scheduler.approvers import distinct_approvers, starter, terms_of
from luminaguard.scheduler.asking import QUESTION_TIMEOUT, RunAsker, Tally
from luminaguard.scheduler.cards import approval_card
from luminaguard.scheduler.classify import Classifier
from luminaguard.scheduler.lease import RunLease
from luminaguard.scheduler.outcomes import ApprovalRequest, Outcome, RunResult, run_state
from luminaguard.scheduler.questions import QuestionBook
from luminaguard.scheduler.readiness import Readiness
from luminaguard.scheduler.redact import RedactingReporter, Redactor, check_secrets
from luminaguard.scheduler.sandbox_set import SandboxSet
from luminaguard.scheduler.sandboxes import absolute_plan, mounts_of
from luminaguard.scheduler.secrets import environment, run_secrets
from luminaguard.scheduler.states import ApprovalState, RunState, StepState
from luminaguard.scheduler.store import RunRecord, RunStore, StepRecord
from luminaguard.scheduler.templates import (
    StepError,
    actual_action,
    needed_steps,
    should_run,
    template_context,
)
from luminaguard.scheduler.tools import Connector, ToolBroker, connect


class Reporter(Protocol):
    """Receives step progress (the CLI's live view, plain lines, or nothing)."""

    def step(self, step_id: str, state: str, detail: str = "") -> None:
        """A step changed state."""
        ...


class _Quiet:
    def step(self, step_id: str, state: str, detail: str = "") -> None:
        pass


class Runner:
    """Drives runs of compiled plans on one backend, journalling into one RunStore.

    Each drive destroys the sandboxes it created when it ends. The backend (and so its
    warm pools) outlives the drives: whoever opened it closes it (a command's session).
    """

    def __init__(
        self,
        store: RunStore,
        backend: Backend,
        *,
        concurrency: int = 4,
        reporter: Reporter | None = None,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        connect: Connector = connect,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.concurrency = concurrency
        self.reporter = reporter or _Quiet()
        self.clock = clock
        self.environ = environ if environ is not None else environment()
        self.connect = connect  # starts MCP clients (tests pass a fake)
        self.sleep = sleep  # waits between attempts (tests pass one that records)
        self.slots = slots  # shared by the runners of a server: steps running at once, overall
        self.draining = False

    def drain(self) -> None:
        """Start no more steps: drives end once their running steps have (a server stopping).

        A drained run stays ``running``, to be resumed by the next start.
        """
        self.draining = True

    async def start(
        self, plan: Plan, run_id: str, started_by: dict[str, str] | None = None
    ) -> RunResult:
        """Record a new run of ``plan`` (and who starts it), drive it as far as it goes."""
        self.create(plan, run_id, started_by)
        return await self.drive(run_id)

    def create(self, plan: Plan, run_id: str, started_by: dict[str, str] | None = None) -> None:
        """Record a new run of ``plan``, all steps pending, to be driven later (``drive``)."""
        check_secrets(run_secrets(plan, self.environ))  # before anything is recorded or run
        who = started_by or starter()
        self.store.create_run(run_id, absolute_plan(plan), self.backend.name, who)

    async def resume(self, run_id: str) -> RunResult:
        """Take the run's lease, recover steps interrupted by a crash, drive the run on."""
        with self.store.lease(run_id) as lease:
            run = self._trusted(run_id)
            check_secrets(run_secrets(run.plan, self.environ))
            if isinstance(self.backend, SweepingBackend):  # what a killed runner left
                await self.backend.sweep()
            records = self.store.steps(run_id)  # once: each step below moves only itself
            for step in run.plan.steps:
                record = records[step.id]
                if record.state is StepState.RUNNING:
                    self._recover(run_id, step)
                elif record.state is StepState.AWAITING_APPROVAL:
                    self.store.set_step(run_id, step.id, StepState.PENDING, "step.resumed", {})
            return await self._drive(run, lease)

    def _trusted(self, run_id: str) -> RunRecord:
        """The run, only if the audit log verifies and vouches for its plan and step states."""
        audited.check_log(self.store)
        run = audited.trusted_run(self.store, run_id)
        audited.check_steps(self.store, run_id)
        return run

    def _recover(self, run_id: str, step: PlannedStep) -> None:
        if step.idempotent:
            data = {"why": "the runner stopped during the step; it is idempotent, so it runs again"}
            self.store.set_step(run_id, step.id, StepState.PENDING, "step.recovered", data)
        else:
            data = {
                "why": "the runner stopped during the step; it may or may not have taken effect"
            }
            self.store.set_step(run_id, step.id, StepState.UNKNOWN, "step.unknown", data)
            why = "approve to run it again, or mark it done"
            self.reporter.step(step.id, StepState.UNKNOWN, why)

    async def drive(self, run_id: str) -> RunResult:
        """Take the run's lease; run every step that can run now, until nothing progresses."""
        with self.store.lease(run_id) as lease:
            return await self._drive(self._trusted(run_id), lease)

    async def _drive(self, run: RunRecord, lease: RunLease) -> RunResult:
        run_id = run.id
        self.store.set_run_state(run_id, RunState.RUNNING)
        execution = _Execution(self, run_id, run.plan, lease.token)
        try:
            await execution.loop()
        finally:
            await execution.close()
        steps = self.store.steps(run_id)
        unfinished = any(step.state is StepState.PENDING for step in steps.values())
        state = RunState.RUNNING if self.draining and unfinished else run_state(steps)
        self.store.set_run_state(run_id, state)
        return RunResult(run_id, state, steps)


class _Execution:
    """One drive of one run: the loop, its sandboxes, its classifier."""

    def __init__(self, runner: Runner, run_id: str, plan: Plan, token: int) -> None:
        self.runner = runner
        self.store = runner.store
        self.run_id = run_id
        self.plan = plan
        self.needs = {s.id: s.needs for s in plan.steps}  # each step's own needs
        self.token = token
        self.classifier = Classifier(plan)
        self.sandboxes = SandboxSet(runner.backend, plan.pools, self._workdir, runner.environ)
        self.questions = QuestionBook(self.store)
        self.tallies: dict[str, Tally] = {}
        # questions left pending by a runner that stopped: nobody waits for their answers
        self.questions.cancel_all(run_id, "the run was driven again")
        self.tools = ToolBroker(
            plan,
            runner.backend,
            self._sandbox,
            runner.environ,
            runner.connect,
            self._asker,
            sleep=runner.sleep,
            folder=self.store.state_dir / "runs" / run_id,
        )
        self.base = self.store.state_dir / "runs" / run_id
        redact = Redactor(run_secrets(plan, runner.environ).values())
        # runs driven at once share the store's audit log: it redacts every run's secrets
        self.store.audit.redact = self.store.audit.redact.including(redact.secrets)
        self.reporter = RedactingReporter(runner.reporter, redact)

    async def loop(self) -> None:
        # read every step once, then only the step whose task just ended: other processes
        # (approve, deny) only touch steps waiting for a person, which take effect on resume
        self.states = self.store.steps(self.run_id)
        self.readiness = Readiness(self.plan, self.states)
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                if not self.runner.draining:
                    self._launch_ready(running)
                if not running:
                    return
                done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
                for step_id in [s for s, task in running.items() if task in done]:
                    running.pop(step_id).result()
                    self.states[step_id] = self.store.step(self.run_id, step_id)
                    self.readiness.changed(step_id, self.states[step_id].state)
        except BaseException:  # cancelled (a server stopping): so are the steps, as a crash
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
            raise

    def _launch_ready(self, running: dict[str, asyncio.Task[None]]) -> None:
        """Skip the steps a need of which did not succeed; start ready ones while slots last.

        Each step ending touches only the steps that need it (``Readiness``): the work per
        step does not grow with the run.
        """
        states, readiness = self.states, self.readiness
        for step in readiness.to_skip():  # skipping one may doom its dependents: same look
            blocked = next(n for n in step.needs if states[n].state.blocks_dependents)
            self._record(step.id, Outcome.skipped(f"{blocked} did not succeed"))
            states[step.id] = self.store.step(self.run_id, step.id)
            readiness.settled(step.id)
            readiness.changed(step.id, states[step.id].state)
        while len(running) < self.runner.concurrency:
            ready = readiness.next_ready()
            if ready is None:
                return
            # the outputs of earlier steps, read when the step renders: a read-only view
            running[ready.id] = asyncio.create_task(self.step(ready, states))
            readiness.settled(ready.id)

    def _record(self, step_id: str, outcome: Outcome, attempt: int | None = None) -> None:
        """The one place a step's outcome (of its ``attempt``, if any) is recorded, then shown."""
        run_id, state = self.run_id, outcome.state
        if attempt is not None:
            outputs = dict(outcome.outputs)
            self.store.finish_attempt(run_id, step_id, attempt, state, outputs, outcome.error)
        elif outcome.request is not None:
            request = outcome.request
            self.store.supersede_approvals(run_id, step_id, request.action_hash)
            self.store.request_approval(
                run_id, step_id, request.action_hash, request.card, request.expires
            )
        else:
            why = dict(outcome.why)
            self.store.set_step(run_id, step_id, state, outcome.event, why, outcome.error)
        self.reporter.step(step_id, state, outcome.detail)

    async def step(self, step: PlannedStep, states: Mapping[str, StepRecord]) -> None:
        """Decide whether, and how, one step runs; run it; record how it ended."""
        # only steps with a condition or run-time arguments need the outputs of earlier steps
        needed = step.when is not None or step.runtime
        visible = needed_steps(self.needs, step.id) if needed else None
        context = template_context(self.plan, states, visible) if needed else {}
        try:
            if not should_run(step, context):
                self._record(step.id, Outcome.skipped(f"when: {step.when} is false"))
                return
            action = actual_action(step, context)
            decision = await self._classify(step, action)
        except StepError as exc:
            self._record(step.id, Outcome.failed(str(exc)))
            return
        record: dict[str, object] | None = _decision_record(action, decision, self.plan)
        if decision.risk == "red":
            self.store.audit_event(self.run_id, step.id, "decision", record or {})
            halted = self._gate(step, action, decision)
            if halted is not None:
                self._record(step.id, halted)
                return
            record = None  # audited already
        await self._execute(step, action, record)

    async def _classify(self, step: PlannedStep, action: Action) -> Decision:
        """The policy's decision, made Red when a called tool changed since the lock."""
        decision = self.classifier.decide(step, action)
        if action.kind == "call":
            decision = await self.tools.drift(step, action, decision)
        return decision

    def _gate(self, step: PlannedStep, action: Action, decision: Decision) -> Outcome | None:
        """None when an approval for exactly this action lets the step run now; else why not."""
        digest = action.content_hash()
        request = self.store.approval(self.run_id, step.id, digest)
        if request is None:
            card = approval_card(step, action, decision, self._views(step.agent))
            card.update(terms_of(self.plan, decision).card())
            expires = self.runner.clock() + self.classifier.approval_timeout(decision)
            return Outcome.awaiting(decision.reason, ApprovalRequest(digest, card, expires))
        record = audited.request(self.store, self.run_id, step.id, digest)
        expires = float(record.data.get("expires", 0)) if record else 0.0  # none: expired
        if request.state is ApprovalState.PENDING and self.runner.clock() > expires:
            request = decisions.expire(self.store, request)
        if request.state is ApprovalState.APPROVED:
            return self._approval_holds(step, digest, decision)
        if request.state is ApprovalState.PENDING:
            return Outcome.awaiting(decision.reason)
        why = f"approval {request.state}" + (f" by {request.approver}" if request.approver else "")
        return Outcome.denied(request.reason, why)

    def _approval_holds(self, step: PlannedStep, digest: str, decision: Decision) -> Outcome | None:
        """None if the stored approval is audited, by as many as may give it as it needs.

        Counted from authentic audit records of exactly this action (never runs.db): the
        distinct approvers the rule's terms allow, at least its ``min_approvals``.
        """
        record = audited.approval(self.store, self.run_id, step.id, digest)
        why: str | None = None
        if record is None:
            why = "the approval in runs.db has no audit record (runs.db was edited)"
        else:
            terms = terms_of(self.plan, decision)
            started = audited.started_by(self.store, self.run_id)
            votes = self.store.approvers_of(self.run_id, step.id, digest)
            allowed = distinct_approvers(terms, votes, started)
            if len(allowed) < terms.min_approvals:
                refusals = (terms.refusal(who, started, True, role) for who, role in votes)
                first = next((refusal for refusal in refusals if refusal), None)
                count = f"{len(allowed)} of {terms.min_approvals} approvals by allowed approvers"
                why = f"{first} ({count})" if first else count
        return None if why is None else Outcome.denied(why, f"approval refused: {why}")

    def _views(self, agent: str) -> dict[str, Path]:
        mounts = mounts_of(self.plan.agents[agent])
        # the work folder is the host's own: resolved here, as cards read views without links
        return {"/work": self._workdir(agent).resolve(), **{m.target: m.source for m in mounts}}

    def _workdir(self, agent: str) -> Path:
        return self.base / "agents" / agent / "work"

    async def _sandbox(self, agent: str) -> SandboxHandle:
        # its folders on a full disk: the run stops (resume), the step is not failed
        with space.reported(self.base, "the run's folder"):
            return await self.sandboxes.get(agent, self.plan.agents[agent])

    async def _execute(
        self, step: PlannedStep, action: Action, decision: dict[str, object] | None
    ) -> None:
        timeout = step.timeout or self.plan.agents[step.agent].spec.limits.timeout
        tries = 1 + (step.retries if step.idempotent else 0)
        for attempt_number in range(1, tries + 1):
            # a step waiting for a slot shared by a server's runs is not running yet
            async with self.runner.slots or contextlib.nullcontext():
                attempt, outcome = await self._attempt(step, action, timeout, decision)
            decision = None  # audited with the first attempt
            last = outcome.state is StepState.SUCCEEDED or attempt_number == tries
            again = replace(outcome, state=StepState.PENDING)  # failed: it is tried again
            self._record(step.id, outcome if last else again, attempt)
            if last:
                return
            await self.runner.sleep(backoff(attempt_number - 1, base=0.25, cap=30.0))

    async def _attempt(
        self,
        step: PlannedStep,
        action: Action,
        timeout: float,
        decision: dict[str, object] | None,
    ) -> tuple[int, Outcome]:
        """Journal one attempt's start, carry it out; the attempt's number and outcome."""
        attempt = self.store.begin_attempt(
            self.run_id,
            step.id,
            action.content_hash(),
            {"action": action.describe()},
            decision,
            repeatable=repeatable(step, action),
            token=self.token,
        )
        self.reporter.step(step.id, StepState.RUNNING, action.describe())
        return attempt, await self._act(step, action, timeout)

    async def _act(self, step: PlannedStep, action: Action, timeout: float) -> Outcome:
        """Carry out the action once; how it ended (never raises for a step that fails)."""
        if action.kind == "call":
            return await self.tools.call(step, action, timeout)
        try:  # a backend failing under the step (a VM dying) fails the step, not the run
            sandbox = await self._sandbox(step.agent)
            result = await self.runner.backend.exec(sandbox, action.command or "", timeout)
        except (StepError, BackendError) as exc:
            return Outcome.failed(str(exc))
        outputs: dict[str, object] = {
            "stdout": result.stdout,
            "stderr": result.stderr,
            "exit_code": result.exit_code,
        }
        return Outcome.ended(outputs, result.failure())

    def _asker(self, name: str, server: McpServer, calls: Mapping[str, float]) -> RunAsker:
        timeout = QUESTION_TIMEOUT if server.question_timeout is None else server.question_timeout
        tally = self.tallies.setdefault(name, Tally())  # the server may be started again
        return RunAsker(self.questions, self.run_id, name, calls, timeout, self.runner.clock, tally)

    async def close(self) -> None:
        await self.tools.aclose()
        await self.sandboxes.aclose()


def repeatable(step: PlannedStep, action: Action) -> bool:
    """Whether running the step again is harmless.

    True when it is declared idempotent, or calls a tool the lock says is read-only or
    idempotent (a call's annotations come only from the lock).
    """
    hints = action.annotations or {}
    return step.idempotent or bool(hints.get("readOnlyHint") or hints.get("idempotentHint"))


def _decision_record(action: Action, decision: Decision, plan: Plan) -> dict[str, object]:
    record: dict[str, object] = {
        "action": action.model_dump(mode="json"),
        "action_hash": action.content_hash(),
        "risk": decision.risk,
        "policy": decision.policy,
        "rule": decision.rule,
        "reason": decision.reason,
    }
    policy = plan.policies.get(decision.policy or "")
    revision = plan.revision_of(policy.source) if policy else None
    if revision is not None:  # a reconciler's plan: the source revision that decided
        record["policy_revision"] = revision
    return record

"""``luminaguard run PATH... --server URL``: compiled here, run by the server, followed here.

The plan is compiled on this machine (an error names FILE:LINE:COL here, and nothing
is sent), then submitted as JSON, its mount sources as absolute paths of this machine
(the server must see the same folders: the same host, or the same paths mounted). The
event stream is opened before the submission, so no change of the run is missed. The
command ends when the run ends or halts, with the exit code a local run would have
(0, 2, 3); a call the server refuses (a bad token, a role without the right, an
invalid plan, a run id in use) exits 1 with the server's message. Everything the
server sends is shown through ``visible``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from luminaguard.compiler import Plan
from luminaguard.hostile_text import visible
from luminaguard.scheduler.outcomes import EXIT_CODES
from luminaguard.scheduler.runner import Reporter
from luminaguard.scheduler.sandboxes import absolute_plan
from luminaguard.scheduler.states import RunState, StepState
from luminaguard.ui.progress import make_reporter, showing
from luminaguard.ui.remote import EventStream, Remote, RemoteError, ServerEvent, quoted

#: Run states the command stops at.
ENDED = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.HALTED})
#: Events after which the run is read again.
RUN_ENDS = frozenset(f"run.{state}" for state in ENDED)
#: Step states shown for events that do not carry one.
SHOWN = {"step.started": StepState.RUNNING, "approval.requested": StepState.AWAITING_APPROVAL}
#: Attempts to reconnect to the event stream, one after the other, before giving up.
RECONNECTS = 5
_EXPLAINED = frozenset({StepState.FAILED, StepState.DENIED, StepState.UNKNOWN})


def run_remote(args: argparse.Namespace, plan: Plan) -> int:
    """Submit ``plan`` to ``args.server``, follow the run, return a local run's exit code."""
    remote = Remote(args.server, args.token)
    # base_dir made absolute here: mount sources are this machine's folders, not
    # folders under the server's working directory (the plan's hash leaves it out)
    body: dict[str, Any] = {"plan": absolute_plan(plan).model_dump(mode="json")}
    if args.run_id:
        body["run_id"] = args.run_id
    if args.backend:
        body["backend"] = args.backend
    stream = remote.events()  # open first: every change from now on is sent
    try:
        summary = remote.call("POST", "/v1/runs", body)
    except RemoteError:
        stream.close()
        raise
    run_id, backend = _text(summary.get("id")), _text(summary.get("backend"))
    print(
        visible(
            f"run {run_id}: workload {plan.workload}, plan {plan.hash[:19]}, backend {backend},"
            f" server {remote.url}"
        )
    )
    reporter = make_reporter([step.id for step in plan.steps])
    with showing(reporter):
        view = follow(remote, run_id, stream, reporter)
    return report(remote, view)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise RemoteError("the server's answer lacks a field it should have")
    return value


def follow(remote: Remote, run_id: str, stream: EventStream, reporter: Reporter) -> dict[str, Any]:
    """Show the run's step changes until it ends or halts; return the run as read last.

    ``stream`` was opened before the run was submitted: every event of the run comes on
    it. The run is read at each event that ends it, and after each reconnection (so an
    end that came while no stream was open is seen too).
    """
    last: int | None = None
    try:
        while True:
            last, run_ended = relay(stream, run_id, reporter, last)
            if not run_ended:  # the stream ran out: open it again, then read the run
                stream.close()
                stream = reconnect(remote, last)
            view = remote.call("GET", f"/v1/runs/{quoted(run_id)}")
            if _run_state(view) in ENDED:
                return view
    finally:
        stream.close()


def relay(
    stream: EventStream, run_id: str, reporter: Reporter, last: int | None
) -> tuple[int | None, bool]:
    """Show the run's events until one ends the run (True) or the stream ends (False)."""
    for event in stream:
        last = event.id
        if event.run_id != run_id:
            continue
        if event.step_id is not None and (state := shown_state(event)):
            reporter.step(event.step_id, state)
        if event.kind in RUN_ENDS:
            return last, True
    return last, False


def shown_state(event: ServerEvent) -> str | None:
    """The step state an event stands for (None for one that says nothing of it)."""
    if event.kind in SHOWN:
        return SHOWN[event.kind]
    kind, _, what = event.kind.partition(".")
    if kind == "step":
        return event.state or what
    return f"approval {what}" if kind == "approval" else None


def reconnect(remote: Remote, last: int | None) -> EventStream:
    """The event stream again, from after ``last`` (a few tries, backing off)."""
    for attempt in range(RECONNECTS):
        try:
            return remote.events(after=last)
        except RemoteError as exc:
            if exc.status or attempt == RECONNECTS - 1:
                why = f"{exc} (stopped following the run; the run itself is not affected)"
                raise RemoteError(why, exc.status) from None
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _run_state(view: dict[str, Any]) -> RunState:
    """The run's state as the server says it (RemoteError when it is not a run state)."""
    state = _state(view)
    if state not in set(RunState):
        raise RemoteError("the server's answer lacks a field it should have")
    return RunState(state)


def _state(value: Any) -> str | None:
    """An object's ``state`` when it is text (a list or an object cannot be looked up)."""
    state = value.get("state") if isinstance(value, dict) else None
    return state if isinstance(state, str) else None


def report(remote: Remote, view: dict[str, Any]) -> int:
    """Say how the run ended and what to do next; return its exit code."""
    run_id, state = _text(view.get("id")), _text(view.get("state"))
    print(visible(f"run {run_id}: {state}"))
    steps = view.get("steps")
    for step in steps if isinstance(steps, list) else []:
        if _state(step) in _EXPLAINED and step.get("error"):
            print(visible(f"  {step.get('step_id')}: {step.get('state')}: {step.get('error')}"))
    if state == RunState.HALTED:
        show_pending(remote, run_id)
    return EXIT_CODES[RunState(state)]


def show_pending(remote: Remote, run_id: str) -> None:
    """The run's pending approval requests, and how to decide them on the server."""
    pending = remote.call("GET", "/v1/approvals").get("approvals")
    for request in pending if isinstance(pending, list) else []:
        if not isinstance(request, dict) or request.get("run_id") != run_id:
            continue
        card = request.get("card")
        what = f"{card.get('action')} ({card.get('reason')})" if isinstance(card, dict) else "?"
        print(visible(f"  {request.get('step_id')}: awaiting approval: {what}"))
    print(visible(f"next: an approver's token: GET {remote.url}/v1/approvals, then POST"))
    print(
        visible(f"      {remote.url}/v1/approvals/{run_id}/STEP/approve|deny with its action_hash;")
    )
    print("      the server resumes the run by itself")

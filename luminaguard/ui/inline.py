"""Deciding a halted run's approval requests at the terminal that started it.

``luminaguard run`` on a terminal (without ``--no-wait``) prints each pending request's
card, as audited and as inert text, and asks: approve, deny (with a reason) or wait
(leave it to someone else). Decisions are made as the person at the keyboard, bound to
the action hash of the card shown. While the prompt waits for a line, the store's
``data_version`` is read every half second: a decision made elsewhere (another terminal,
the API) or the request's expiry ends the wait for that request. When something was
decided the run is resumed here, unless a server serves the folder (it continues the run).
"""

from __future__ import annotations

import asyncio
import os
import select
import sys
import time
from collections.abc import Awaitable, Callable

from luminaguard.errors import LuminaGuardError
from luminaguard.hostile_text import visible
from luminaguard.scheduler import decisions
from luminaguard.scheduler.decisions import Verdict
from luminaguard.scheduler.outcomes import RunResult
from luminaguard.scheduler.states import ApprovalState, RunState
from luminaguard.scheduler.store import ApprovalRecord, RunStore
from luminaguard.server.claim import serving
from luminaguard.ui.commands.approvals import print_card, token_role

#: Seconds between two looks at the store while the prompt waits for a line.
POLL = 0.5

Settled = Callable[[], str | None]


class LineReader:
    """Lines typed on a terminal, waited for at most ``POLL`` seconds at a time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    async def line(self, prompt: str, settled: Settled) -> str | None:
        """The next line typed, or None once ``settled`` says why the wait is over.

        ``EOFError`` when the terminal has no more input.
        """
        print(prompt, end="", flush=True)
        while b"\n" not in self.buffer:
            why = settled()
            if why is not None:
                print(f"\n{why}", flush=True)
                return None
            ready, _, _ = await asyncio.to_thread(select.select, [self.fd], [], [], POLL)
            if ready:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    raise EOFError
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode(errors="replace").strip()


class Prompt:
    """Asks the person about the pending requests of one run."""

    def __init__(self, store: RunStore, run_id: str, who: str, reader: LineReader) -> None:
        self.store = store
        self.run_id = run_id
        self.who = who
        self.role = token_role(store, who)
        self.reader = reader

    async def round(self) -> bool:
        """Ask about each pending request; whether any was decided (here, elsewhere) or expired."""
        decided = False
        for request in self.store.approvals(ApprovalState.PENDING, self.run_id):
            audited = decisions.as_audited(self.store, request)
            print_card(audited)
            decided = await self.ask(audited) or decided
        return decided

    def settled(self, request: ApprovalRecord) -> Settled:
        """Why the wait for ``request`` is over (decided elsewhere, expired), or None."""
        first = [True]

        def why() -> str | None:
            if time.time() > request.expires:
                return f"{visible(request.step_id)}: the request expired"
            changed = self.store.changed_elsewhere()
            if not (changed or first[0]):
                return None
            first[0] = False
            now = self.store.approval(request.run_id, request.step_id, request.action_hash)
            if now is not None and now.state is ApprovalState.PENDING:
                return None
            state = now.state if now is not None else "gone"
            by = f" by {now.approver}" if now is not None and now.approver else ""
            return visible(f"{request.step_id}: decided elsewhere: {state}{by}")

        return why

    async def ask(self, request: ApprovalRecord) -> bool:
        """Ask until the request is decided, left to others, or settled elsewhere."""
        settled = self.settled(request)
        step = visible(request.step_id)
        while True:
            answer = await self.reader.line(f"{step}: [a]pprove, [d]eny, [w]ait? ", settled)
            if answer is None:
                return True
            reason: str | None = None
            if answer[:1] == "d":
                reason = await self.reader.line("reason: ", settled)
                if reason is None:
                    return True
            if answer[:1] in ("a", "d"):
                verdict = self.decide(request, answer[:1] == "a", reason or None)
                if verdict is not None:
                    return verdict is not Verdict.COUNTED
            elif answer[:1] == "w":
                print(f"{step}: left for someone else")
                return False
            else:
                print("answer a, d or w")

    def decide(
        self, request: ApprovalRecord, approving: bool, reason: str | None
    ) -> Verdict | None:
        """Record the decision about the action shown; what it recorded (None: refused)."""
        key = (self.store, request.run_id, request.step_id, self.who, reason)
        digest = request.action_hash
        try:
            if approving:
                done = decisions.approve(*key, action_hash=digest, role=self.role)
            else:
                done = decisions.deny(*key, action_hash=digest, role=self.role)
        except LuminaGuardError as exc:
            print(visible(f"not recorded: {exc}"))
            return None
        print(visible(_said(request.step_id, done)))
        return done.verdict


def _said(step_id: str, done: decisions.Recorded) -> str:
    if done.verdict is Verdict.COUNTED:
        return f"{step_id}: approval by {done.who} counted; {done.needed} more needed"
    if done.verdict is Verdict.EXPIRED:
        return f"{step_id}: the request expired; the step is denied"
    return f"{step_id}: {done.verdict.name.lower()} by {done.who}"


async def follow(
    store: RunStore,
    result: RunResult,
    who: str,
    resume: Callable[[], Awaitable[RunResult]],
) -> RunResult:
    """While the run is halted for approval, ask the person, then resume it; how it ended."""
    prompt = Prompt(store, result.run_id, who, LineReader(sys.stdin.fileno()))
    while result.state is RunState.HALTED and store.approvals(ApprovalState.PENDING, result.run_id):
        try:
            if not await prompt.round():
                break
        except EOFError:
            break
        server = serving(store.state_dir)
        if server is not None:
            print(f"the server (PID {server['pid']}, {visible(server['url'])}) continues the run")
            break
        result = await resume()
    return result

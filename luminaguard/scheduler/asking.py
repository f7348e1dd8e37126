"""``RunAsker``: a server's question put in the queue, and the wait for a person's reply.

One asker serves one MCP server of one run. A question belongs to the step whose tool
call is in flight on that server (none, when several are: the server is named
either way). It waits until a person answers or declines it, or until its deadline:
the server's ``question_timeout``, cut short to end a little before the tool call's
own timeout (so that the server hears "decline" rather than nothing). At the deadline
the question is recorded as expired and the server told "decline"; a tool call that
ends first (or a runner that stops) cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from luminaguard.scheduler.questions import QuestionBook, QuestionState
from luminaguard.scheduler.states import StateError
from luminaguard.transport.forms import Form
from luminaguard.transport.reply import Reply

#: How long a question waits for a person unless its server says otherwise, seconds.
QUESTION_TIMEOUT = 300.0
#: How long before a tool call's timeout its question expires, seconds.
MARGIN = 1.0
#: How often the wait looks for a reply, seconds (a read of one row).
POLL = 0.1
EXPIRED_WHY = "no answer before the timeout"
#: A server's questions waiting at once, and asked in all (of one run): a server is
#: hostile, and a flood of questions would bury the ones that matter.
MAX_WAITING = 2
MAX_ASKED = 50
#: Refusals (sampling, URL questions, bad forms, questions past the limits) of one
#: server audited in a run: each is a record, and a server may ask without end.
MAX_REFUSED = 20
UNAUDITED = "further refusals of this server in this run are not audited"


class TooManyQuestions(Exception):
    """The server asks more than a person should be asked: refused, not queued."""


@dataclass
class Tally:
    """What one server of a run has asked: kept across its restarts (one per drive)."""

    waiting: int = 0
    refused: int = 0


class RunAsker:
    """Asks one server's questions for one run; see the module's docstring.

    The questions asked in all are counted in runs.db (across restarts of the server,
    drives of the run and of this process); those waiting and the refusals in ``tally``,
    which the drive keeps per server.
    """

    def __init__(
        self,
        book: QuestionBook,
        run_id: str,
        server: str,
        calls: Mapping[str, float],
        timeout: float,
        clock: Callable[[], float] = time.time,
        tally: Tally | None = None,
    ) -> None:
        self.book = book
        self.run_id = run_id
        self.server = server
        #: the tool calls in flight on the server: step id -> deadline (event loop time)
        self.calls = calls
        self.timeout = timeout
        self.clock = clock
        self.tally = tally if tally is not None else Tally()

    def _step(self) -> str | None:
        return next(iter(self.calls)) if len(self.calls) == 1 else None

    def _wait_for(self) -> float:
        """Seconds the question may wait: its timeout, within the earliest call's."""
        wait = self.timeout
        if self.calls:
            left = min(self.calls.values()) - asyncio.get_running_loop().time() - MARGIN
            wait = min(wait, left)
        return max(0.0, wait)

    async def ask(self, message: str, form: Form) -> Reply:
        """Queue the question and wait for the reply (a decline at the deadline).

        ``TooManyQuestions`` (nothing queued) past ``MAX_WAITING`` or ``MAX_ASKED``.
        """
        asked = self.book.asked_by(self.run_id, self.server)
        if self.tally.waiting >= MAX_WAITING or asked >= MAX_ASKED:
            raise TooManyQuestions(
                f"{self.server} asks too many questions ({MAX_WAITING} may wait at once,"
                f" {MAX_ASKED} in a run)"
            )
        self.tally.waiting += 1
        try:
            return await self._ask(message, form)
        finally:
            self.tally.waiting -= 1

    async def _ask(self, message: str, form: Form) -> Reply:
        wait = self._wait_for()
        deadline = asyncio.get_running_loop().time() + wait
        question = self.book.ask(
            self.run_id, self._step(), self.server, message, form, self.clock() + wait
        )
        try:
            return await self._reply(question.question_id, deadline)
        except BaseException:
            with contextlib.suppress(StateError):
                self.book.close(
                    self.run_id, question.question_id, QuestionState.CANCELLED,
                    "luminaguard", "the tool call ended first",
                )  # fmt: skip
            raise

    async def _reply(self, question_id: str, deadline: float) -> Reply:
        loop = asyncio.get_running_loop()
        while True:
            reply = self.book.reply(self.run_id, question_id)
            if reply is not None:
                return reply
            left = deadline - loop.time()
            if left <= 0:
                try:
                    self.book.close(
                        self.run_id, question_id, QuestionState.EXPIRED, "luminaguard", EXPIRED_WHY
                    )
                except StateError:
                    continue  # answered meanwhile: that answer counts
                return Reply("decline")
            await asyncio.sleep(min(POLL, left))

    async def refuse(self, request: str, why: str) -> None:
        """Audit a refused request of the server (sampling, a URL, a bad form).

        Only the first ``MAX_REFUSED`` of a run: the last of them says so.
        """
        self.tally.refused += 1
        if self.tally.refused > MAX_REFUSED:
            return
        data = {"server": self.server, "why": why}
        if self.tally.refused == MAX_REFUSED:
            data["note"] = UNAUDITED
        self.book.store.audit_event(self.run_id, self._step(), f"{request}.refused", data)

"""Webhook notifications: each new approval request is posted to its policy's webhooks.

On every ``approval.requested`` event the request is read back from the audit log (its
authentic record: the card as recorded, redacted already) and the run's plan (only as
audited at its start: runs.db alone cannot add a webhook) gives the policy's
``approval.notify``. Each webhook is posted to from its own task, through the
standard library in a worker thread (the event loop never waits on a network), with
``ATTEMPTS`` tries of ``TIMEOUT`` seconds each and the project's backoff between them;
then ``notify.delivered`` or ``notify.failed`` is audited.

What leaves the server: the run, step, agent, policy, rule, reason, action hash, expiry
and a link to the approval card. Never the action or its arguments (they may hold
anything a run produced), and the whole body passes through the run's ``Redactor``
besides. Slack text is escaped (``&``, ``<``, ``>``) so run text cannot mention
``<!channel>`` or draw links. A webhook URL may be a credential (a Slack webhook's path
is its secret): only its scheme and host are ever recorded or logged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import json
import logging
import socket
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from luminaguard.backoff import backoff
from luminaguard.compiler.plan import Plan
from luminaguard.config.models.policy import Webhook
from luminaguard.errors import LuminaGuardError
from luminaguard.scheduler.audited import trusted_run
from luminaguard.scheduler.redact import Redactor
from luminaguard.scheduler.secrets import run_secrets
from luminaguard.scheduler.store import RunStore
from luminaguard.server.events import Event

log = logging.getLogger("luminaguard.server")

#: Tries per webhook, and seconds each may take.
ATTEMPTS = 5
TIMEOUT = 10.0
#: Backoff between tries: first wait (seconds) and the longest.
BASE = 1.0
CAP = 30.0
#: Posts under way at once, over all webhooks.
PARALLEL = 8
#: Longest text of one field in a message.
FIELD_LIMIT = 500
#: Runs whose webhooks are kept at once (a run's plan never changes).
RUNS_KEPT = 256
#: HTTP statuses worth another try (besides 5xx and network errors).
_TRANSIENT = (408, 425, 429)
#: Bytes of an answer read (and dropped) before the connection closes.
MAX_ANSWER = 64 << 10

#: Posts ``body`` (JSON) to ``url`` within ``timeout`` seconds: the HTTP status.
Post = Callable[[str, bytes, float], int]


def post(url: str, body: bytes, timeout: float) -> int:
    """POST ``body`` as JSON to ``url`` within ``timeout`` seconds in all; the HTTP status.

    A socket's timeout bounds each read, not the post: a receiver answering a header
    line at a time could hold it for hours. A watchdog shuts the socket down at the
    deadline, which ends whatever read is under way (an OSError here).
    """
    parts = urllib.parse.urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=timeout)
    watchdog = threading.Timer(timeout, _cut, (connection,))
    watchdog.start()
    try:
        target = parts.path or "/"
        target += f"?{parts.query}" if parts.query else ""
        headers = {"Content-Type": "application/json", "User-Agent": "luminaguard"}
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()  # a redirect is an answer, never followed
        response.read(MAX_ANSWER)
        return int(response.status)
    finally:
        watchdog.cancel()
        connection.close()


def _cut(connection: http.client.HTTPConnection) -> None:
    """End the post now: shut its socket down (the blocked read returns)."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def where(url: str) -> str:
    """What is recorded of a webhook URL: scheme and host (and port), never its path."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def slack_escape(text: str) -> str:
    """``text`` as Slack shows it literally: its control characters ``&``, ``<``, ``>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Request:
    """What a message says of one approval request (texts from the run: hostile)."""

    run_id: str
    step_id: str
    action_hash: str
    agent: str
    policy: str
    rule: str
    reason: str
    expires: float
    link: str | None

    def generic(self) -> dict[str, Any]:
        """The request as JSON: no action, no arguments."""
        return {
            "event": "approval.requested",
            "run_id": self.run_id,
            "step_id": self.step_id,
            "action_hash": self.action_hash,
            "agent": self.agent,
            "policy": self.policy,
            "rule": self.rule,
            "reason": self.reason,
            "expires": self.expires,
            "link": self.link,
        }

    def slack(self) -> dict[str, Any]:
        """A Slack incoming-webhook message; every text from the run escaped."""

        def shown(text: str) -> str:
            return slack_escape(text[:FIELD_LIMIT])

        lines = [
            f"Approval needed: run {shown(self.run_id)}, step {shown(self.step_id)}"
            f" (agent {shown(self.agent)})",
            f"Rule {shown(self.rule)} of policy {shown(self.policy)}: {shown(self.reason)}",
        ]
        if self.link is not None:
            lines.append(f"<{slack_escape(self.link)}|Open the approval card>")
        return {"text": "\n".join(lines), "unfurl_links": False, "unfurl_media": False}


def card_link(public_url: str | None, run_id: str, step_id: str) -> str | None:
    """The web card of a request: ``PUBLIC_URL/#/approvals/RUN/STEP`` (ids quoted)."""
    if public_url is None:
        return None
    run, step = (urllib.parse.quote(part, safe="") for part in (run_id, step_id))
    return f"{public_url.rstrip('/')}/#/approvals/{run}/{step}"


def body(hook: Webhook, request: Request, redact: Redactor) -> bytes:
    """The JSON posted to ``hook`` about ``request``, every string redacted."""
    message = request.slack() if hook.format == "slack" else request.generic()
    return json.dumps(redact.value(message), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Delivery:
    """How posting to one webhook ended."""

    delivered: bool
    attempts: int
    status: int | None
    error: str | None


def _transient(status: int) -> bool:
    return status >= 500 or status in _TRANSIENT


def _why(exc: Exception, url: str) -> str:
    """An error as recorded: its kind and message, with the URL reduced to its host."""
    text = f"{type(exc).__name__}: {exc}"[:FIELD_LIMIT]
    return text.replace(url, where(url))


@dataclass
class Sender:
    """Posts with retries: ``attempts`` tries, backoff between, one post at a time per slot."""

    post: Post = post
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    attempts: int = ATTEMPTS
    timeout: float = TIMEOUT
    base: float = BASE
    cap: float = CAP

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(PARALLEL)
        # threads of its own: slow receivers never hold the loop's default pool, which
        # the server's watcher and sandbox clean-ups use
        self.pool = concurrent.futures.ThreadPoolExecutor(PARALLEL, "luminaguard-notify")

    async def deliver(self, url: str, data: bytes) -> Delivery:
        """Post until a 2xx, a final refusal (4xx) or the last attempt."""
        status: int | None = None
        error: str | None = None
        for attempt in range(1, self.attempts + 1):
            status, error = await self._attempt(url, data)
            if status is not None and 200 <= status < 300:
                return Delivery(True, attempt, status, None)
            if status is not None and not _transient(status):
                return Delivery(False, attempt, status, error)
            if attempt < self.attempts:
                await self.sleep(backoff(attempt - 1, self.base, self.cap))
        return Delivery(False, self.attempts, status, error)

    async def _attempt(self, url: str, data: bytes) -> tuple[int | None, str | None]:
        """One post: its status, or why there is none; and what went wrong, if anything."""
        try:
            async with self.slots:
                loop = asyncio.get_running_loop()
                status = await loop.run_in_executor(self.pool, self.post, url, data, self.timeout)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # unreachable, timeout
            return None, _why(exc, url)
        return status, None if 200 <= status < 300 else f"HTTP {status}"


class Notifier:
    """Hub listener: posts each new request to its policy's webhooks, audits each delivery."""

    def __init__(
        self,
        store: RunStore,
        environ: Mapping[str, str],
        public_url: str | None = None,
        sender: Sender | None = None,
    ) -> None:
        self.store = store
        self.environ = environ
        self.public_url = public_url
        self.sender = sender or Sender()
        self.tasks: set[asyncio.Task[None]] = set()
        self._runs: dict[str, tuple[dict[str, list[Webhook]], Redactor]] = {}

    def saw(self, event: Event) -> None:
        """Start the deliveries of a new request (called for every event: quick, never raises)."""
        if event.kind != "approval.requested" or event.step_id is None:
            return
        try:
            found = self._request(event, event.step_id)
            if found is None:
                return
            request, hooks, redact = found
            loop = asyncio.get_running_loop()
            for hook in hooks:
                task = loop.create_task(self._deliver(hook, request, redact))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except Exception as exc:  # the other listeners and subscribers get the event still
            log.warning("run %s: request %d not notified: %s", event.run_id, event.id, exc)

    def _request(
        self, event: Event, step_id: str
    ) -> tuple[Request, list[Webhook], Redactor] | None:
        """The request of the event, its webhooks and the run's redactor (None: no webhooks)."""
        records = self.store.audit.records(event.run_id, step_id, "approval.requested")
        [record] = [r for r in records if r.seq == event.id]
        if not self.store.audit.authentic(record):
            raise LuminaGuardError("its audit record is not authentic")
        card = record.data["card"]
        webhooks, redact = self._run(event.run_id)
        hooks = webhooks.get(str(card["policy"]), [])
        if not hooks:
            return None
        request = Request(
            run_id=event.run_id,
            step_id=step_id,
            action_hash=str(record.data["action_hash"]),
            agent=str(card.get("agent", "")),
            policy=str(card["policy"]),
            rule=str(card.get("rule", "")),
            reason=str(card.get("reason", "")),
            expires=float(record.data["expires"]),
            link=card_link(self.public_url, event.run_id, step_id),
        )
        return request, hooks, redact

    def _run(self, run_id: str) -> tuple[dict[str, list[Webhook]], Redactor]:
        """The run's webhooks by policy, from its plan as audited, and its redactor (kept)."""
        if run_id not in self._runs:
            if len(self._runs) >= RUNS_KEPT:
                self._runs.pop(next(iter(self._runs)))
            plan = trusted_run(self.store, run_id).plan
            webhooks = {
                name: list(policy.spec.approval.notify)
                for name, policy in plan.policies.items()
                if policy.spec.approval.notify
            }
            self._runs[run_id] = webhooks, _redactor(plan, self.environ)
        return self._runs[run_id]

    async def _deliver(self, hook: Webhook, request: Request, redact: Redactor) -> None:
        delivery = await self.sender.deliver(hook.url, body(hook, request, redact))
        data = {
            "webhook": where(hook.url),
            "format": hook.format,
            "action_hash": request.action_hash,
            "attempts": delivery.attempts,
            "status": delivery.status,
        }
        if delivery.error is not None:
            data["error"] = delivery.error
        kind = "notify.delivered" if delivery.delivered else "notify.failed"
        if not delivery.delivered:
            log.warning(
                "run %s step %s: %s not notified after %d attempts: %s",
                request.run_id, request.step_id, data["webhook"], delivery.attempts, delivery.error,
            )  # fmt: skip
        try:
            self.store.audit_event(request.run_id, request.step_id, kind, data)
        except Exception:  # the run goes on; the log says what was not recorded
            log.exception("recording %s of run %s failed", kind, request.run_id)

    async def stop(self, grace: float) -> None:
        """Give deliveries under way ``grace`` seconds, then cancel the rest (not recorded)."""
        if not self.tasks:
            return
        _, late = await asyncio.wait(set(self.tasks), timeout=grace)
        for task in late:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*late, return_exceptions=True)


def _redactor(plan: Plan, environ: Mapping[str, str]) -> Redactor:
    return Redactor(run_secrets(plan, environ).values())

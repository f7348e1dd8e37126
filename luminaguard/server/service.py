"""``Server``: one state folder served: its store, engine, events, tokens and backends.

``start`` opens what the API needs and resumes the runs left running; ``stop`` drains
the engine (a grace period for running steps), ends the event streams, closes the
backends and the store. Between the two, commits of this process feed the event hub at
once, and commits of other processes (CLI commands on the same folder) reach the hub
and the engine through ``watch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from luminaguard.gitops.source import Source
from luminaguard.hypervisor.base import Backend
from luminaguard.hypervisor.registry import backend as registered
from luminaguard.policy.in_force import PoliciesInForce
from luminaguard.scheduler.store import RunStore
from luminaguard.scheduler.tools import Connector, connect
from luminaguard.server.engine import Engine
from luminaguard.server.events import EventHub
from luminaguard.server.metrics import Metrics
from luminaguard.server.notify import Notifier
from luminaguard.server.reconciling import Controller
from luminaguard.server.tokens import TokenFile
from luminaguard.server.watch import watch

log = logging.getLogger("luminaguard.server")

#: Longest wait, on stop, for webhook deliveries under way.
NOTIFY_GRACE = 10.0


class Server:
    """Everything one ``luminaguard serve`` process holds.

    ``public_url``: the server's address as people reach it, the base of the links to
    approval cards in webhook messages (none without it).
    """

    def __init__(
        self,
        store: RunStore,
        *,
        backend: str = "sandbox",
        concurrency: int = 16,
        per_run: int = 4,
        workspace: Path | None = None,
        environ: Mapping[str, str] | None = None,
        backends: dict[str, Backend] | None = None,
        connector: Connector = connect,
        public_url: str | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.workspace = workspace.resolve() if workspace else None
        self._backends: dict[str, Backend] = dict(backends or {})
        self.tokens = TokenFile(store.state_dir)
        self.engine = Engine(
            store,
            self.open_backend,
            slots=concurrency,
            per_run=per_run,
            environ=environ,
            connector=connector,
        )
        self.hub = EventHub(store)
        store.audit.incremental = True  # checked whole at start, then from where it was
        self.metrics = Metrics(store, self.pools)
        self.hub.listeners.append(self.metrics.saw)
        #: posts new approval requests to their policies' webhooks
        self.notifier = notifier or Notifier(store, self.engine.environ, public_url)
        self.hub.listeners.append(self.notifier.saw)
        self.ready = False
        self._stop_watch = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        #: the policies a source put in force (``serve --source``); none without one
        self.policies = PoliciesInForce()
        self.controller: Controller | None = None
        self._reconciling: asyncio.Task[None] | None = None

    def follow(self, source: Source, interval: float, prune: bool) -> None:
        """Reconcile ``source`` continuously once started (``serve --source``)."""
        self.controller = Controller(self, source, interval, prune)

    def open_backend(self, name: str) -> Backend:
        """The backend of this name, opened once and kept (its warm pools stay warm)."""
        if name not in self._backends:
            self._backends[name] = registered(name)
        return self._backends[name]

    def pools(self) -> dict[str, Any]:
        """The warm pools of every open backend, by name."""
        found: dict[str, Any] = {}
        for backend in self._backends.values():
            found.update(getattr(backend, "pools", {}))
        return found

    @staticmethod
    def new_run_id(workload: str) -> str:
        """A readable, unique run id: workload, time, random suffix."""
        return f"{workload}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"

    async def start(self) -> None:
        """Open the backend and the event feed; resume the runs left running.

        The folder is watched before the engine looks at the runs: a decision another
        process records is then either among what the engine reads, or a change the
        watcher reports (recorded in between, it was neither, and waited for the next).
        """
        self.open_backend(self.backend)
        self.store.on_commit.append(self.hub.poll)
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        await asyncio.sleep(0)  # the watcher's first step: it reads the version, then watches
        await self.engine.start()
        if self.controller is not None:
            self.controller.restore()
            stop = self._stop_watch
            self._reconciling = asyncio.get_running_loop().create_task(self.controller.run(stop))
        self.ready = True

    async def _watch(self) -> None:
        try:
            await watch(self.store, self._changed_elsewhere, self._stop_watch)
        except Exception:  # the server keeps serving; CLI decisions wait for a restart
            log.exception("watching the state folder failed")
            self.ready = False

    def _changed_elsewhere(self) -> None:
        self.hub.poll()
        self.engine.poke()

    async def stop(self, grace: float) -> None:
        """Drain (``grace`` seconds for running steps), then close everything."""
        self.ready = False
        await self.engine.stop(grace)
        await self.notifier.stop(min(grace, NOTIFY_GRACE))  # the store closes after us
        self._stop_watch.set()
        for task in (self._watcher, self._reconciling):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 5)
        self.hub.close()
        for backend in self._backends.values():
            with contextlib.suppress(Exception):
                await backend.aclose()
        self._backends.clear()
        with contextlib.suppress(ValueError):
            self.store.on_commit.remove(self.hub.poll)

"""A Runner on the fake backend and fake tool clients: compile YAML steps, run, look.

Nothing here starts a process: the backend and the MCP servers are fakes, the store
is a real ``RunStore`` under tmp_path and the clock is the test's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from luminaguard.compiler import Plan, compile_paths
from luminaguard.config.models import McpServer
from luminaguard.hypervisor.base import Backend
from luminaguard.hypervisor.fake import FakeBackend
from luminaguard.scheduler.outcomes import RunResult
from luminaguard.scheduler.runner import Runner
from luminaguard.scheduler.store import RunStore
from luminaguard.scheduler.tools import Connector
from luminaguard.transport.base import ToolClient
from luminaguard.transport.fake import FakeToolClient

TOKEN = "tok-9f8e7d6c5b4a"

HEAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  approval: {timeout: %(approval)s}
  rules:
    - id: safe
      match: {program: [echo, cat, 'true', sleep], redirects: {path: /work/**}}
      risk: green
      reason: safe
    - {id: tools, match: {server: tools}, risk: green, reason: the fake server}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  env: {TOKEN: {from_env: LG_TEST_TOKEN}}
  limits: {timeout: 20s}
  mcp_servers:
    tools: {url: "http://127.0.0.1:9/never-reached"}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
"""


def compile_steps(folder: Path, steps: str, approval: str = "1h") -> Plan:
    """The plan of a workload with these steps (YAML lines under ``steps:``)."""
    path = folder / "w.yaml"
    path.write_text(HEAD % {"approval": approval} + steps)
    _, plans = compile_paths([str(path)])
    return plans[0]


def connector(clients: Mapping[str, ToolClient]) -> Connector:
    """A connector handing out the given clients by ``agent/server`` name."""

    async def connect(
        name: str,
        server: McpServer,
        backend: Backend,
        sandbox: object,
        environ: Mapping[str, str],
        asker: object = None,
    ) -> ToolClient:
        return clients[name]

    return connect


@dataclass
class Clock:
    """A clock that moves only when the test moves it."""

    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """One store, one fake backend, one fake MCP server ``a/tools``; runs plans on them."""

    state: Path
    backend: FakeBackend = field(default_factory=FakeBackend)
    tools: FakeToolClient = field(default_factory=lambda: FakeToolClient(name="a/tools"))
    clock: Clock = field(default_factory=Clock)
    environ: dict[str, str] = field(default_factory=lambda: {"LG_TEST_TOKEN": TOKEN})
    concurrency: int = 4
    pauses: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = RunStore(self.state)

    async def _pause(self, seconds: float) -> None:
        self.pauses.append(seconds)

    def runner(self) -> Runner:
        """A runner on the fakes (a new one per call, as a new ``luminaguard`` process)."""
        return Runner(
            self.store,
            self.backend,
            concurrency=self.concurrency,
            clock=self.clock,
            environ=self.environ,
            connect=connector({"a/tools": self.tools}),
            sleep=self._pause,
        )

    def start(self, plan: Plan, run_id: str = "r") -> RunResult:
        """Start a run of ``plan`` and drive it as far as it goes."""
        return asyncio.run(self.runner().start(plan, run_id))

    def resume(self, run_id: str = "r") -> RunResult:
        """Resume a run."""
        return asyncio.run(self.runner().resume(run_id))

    def states(self, run_id: str = "r") -> dict[str, tuple[str, int]]:
        """Each step's state and number of attempts."""
        return {k: (v.state, v.attempts) for k, v in self.store.steps(run_id).items()}

    def decide(self, step_id: str, state: str, approver: str = "alice") -> None:
        """Decide the one pending approval request of ``step_id``."""
        [request] = [a for a in self.store.approvals("pending") if a.step_id == step_id]
        self.store.decide_approval(request, state, approver, "decided in a test")

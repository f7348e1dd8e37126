"""``ToolBroker``: the MCP servers of one run, started on first use, compared with the lock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from luminaguard.backoff import backoff
from luminaguard.compiler.lock import LockedTool, changes
from luminaguard.compiler.plan import Plan, PlannedStep
from luminaguard.config.models import McpServer
from luminaguard.hypervisor.base import Backend, BackendError, SandboxHandle, SandboxProcess
from luminaguard.policy.action import Action, Decision
from luminaguard.scheduler.outcomes import Outcome
from luminaguard.scheduler.secrets import resolve
from luminaguard.scheduler.templates import StepError
from luminaguard.scheduler.tool_files import save
from luminaguard.transport.base import ToolClient, ToolInfo, TransportError

TYPE_CHECKING = False  # mypy treats this name as true
if TYPE_CHECKING:
    from luminaguard.transport.questions import Asker  # the MCP SDK: imported by ``connect``

#: How long a started stdio MCP server has to answer the MCP handshake, seconds. The
#: sandbox's own start-up is not in it (each backend bounds its own: a gVisor start,
#: a VM's boot).
STARTUP_TIMEOUT = 60.0
DRIFT_RULE = "tool-changed-since-lock"
#: How often a server that stopped (a stdio server that exited) is started again in one
#: drive, and the backoff before each restart (base and cap, seconds).
MAX_RESTARTS = 5
RESTART_BACKOFF = (0.25, 10.0)

log = logging.getLogger(__name__)


def alive(client: ToolClient) -> bool:
    """Whether the client's server is still there (clients that cannot tell: always)."""
    return bool(getattr(client, "alive", True))


#: Starts a client for one server: ``connect`` below, or a fake in tests.
Connector = Callable[
    [
        str,
        McpServer,
        Backend,
        Callable[[], Awaitable[SandboxHandle]],
        Mapping[str, str],
        "Asker | None",
    ],
    Awaitable[ToolClient],
]
#: Makes the asker of one server (its name, its config, the calls in flight on it).
AskerFactory = Callable[[str, McpServer, Mapping[str, float]], "Asker"]


async def connect(
    name: str,
    server: McpServer,
    backend: Backend,
    sandbox: Callable[[], Awaitable[SandboxHandle]],
    environ: Mapping[str, str],
    asker: Asker | None = None,
) -> ToolClient:
    """A started client for one server: stdio inside the sandbox, or HTTP endpoints.

    ``asker`` puts a stdio server's questions to a person (HTTP servers ask none). The
    MCP SDK is imported here, by the first run that calls a tool: not by every run.
    """
    if server.command is None:
        from luminaguard.transport.mcp_http import RetryPolicy, http_client

        headers = resolve(server.headers, environ, "header")
        policy = RetryPolicy()
        if server.retry_window is not None:
            policy.window = server.retry_window
        return await http_client(name, server.endpoints, headers, policy)
    env = resolve(server.env, environ, "server env")
    handle, argv = await sandbox(), [server.command, *server.args]
    process = await backend.spawn(handle, argv, env)

    async def started() -> SandboxProcess:
        return process

    from luminaguard.transport.mcp_stdio import stdio_client

    client = stdio_client(name, started, asker)
    await client.start(STARTUP_TIMEOUT)  # from the server's start; the client kills it on failure
    return client


#: A placeholder decision: ``drift`` hands back another one when the tool changed.
_GREEN = Decision(risk="green", policy="", rule=None, reason="")


def _stopped(error: str, step: PlannedStep, idempotent: bool) -> str:
    """The error of a call during which the server stopped, saying what happens next."""
    if not idempotent:
        return (
            f"{error}; the server stopped during the call, which is not retried: it may "
            "have taken effect and the tool is not idempotent"
        )
    again = "the next attempt" if step.idempotent and step.retries else "the next call"
    return f"{error}; the server stopped and is started again for {again}"


class ToolBroker:
    """Connections to the MCP servers of a run's agents, and what each offers live."""

    def __init__(
        self,
        plan: Plan,
        backend: Backend,
        sandbox: Callable[[str], Awaitable[SandboxHandle]],
        environ: Mapping[str, str],
        connect: Connector = connect,
        asker: AskerFactory | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        folder: Path | None = None,
    ) -> None:
        self.plan = plan
        self.folder = folder  # the run's folder: the files of results go under it
        self.sleep = sleep
        self.restarts: dict[tuple[str, str], int] = {}
        self.backend = backend
        self.sandbox = sandbox
        self.environ = environ
        self.connect = connect
        self.clients: dict[tuple[str, str], ToolClient] = {}
        self.tools: dict[tuple[str, str], dict[str, ToolInfo]] = {}
        self._starting: dict[tuple[str, str], asyncio.Lock] = {}
        self._changed: dict[tuple[str, str, str], list[str]] = {}
        self._asker = asker
        #: per server, the tool calls in flight: step id -> deadline (event loop time)
        self.calls: dict[tuple[str, str], dict[str, float]] = {}

    async def _retire(self, key: tuple[str, str], client: ToolClient) -> None:
        """Close the client of a server that stopped; wait (backoff) before its restart.

        StepError (the client kept, dead) once it was restarted ``MAX_RESTARTS`` times.
        """
        count = self.restarts.get(key, 0)
        if count >= MAX_RESTARTS:
            raise StepError(
                f"MCP server {'/'.join(key)!r} stopped again after {count} restarts; "
                "it is not started again"
            )
        del self.clients[key]
        await client.aclose()
        self._changed = {k: v for k, v in self._changed.items() if k[:2] != key}
        self.restarts[key] = count + 1
        log.info(
            "MCP server %s stopped; restarting it (%d/%d)", "/".join(key), count + 1, MAX_RESTARTS
        )
        await self.sleep(backoff(count, *RESTART_BACKOFF))

    async def client(self, agent: str, name: str) -> tuple[ToolClient, dict[str, ToolInfo]]:
        """The connection to an agent's server and its live tools.

        Started on first use, and again (in the same sandbox, after a backoff) when the
        server stopped since: a call is never sent over a connection known to be dead.
        """
        key = (agent, name)
        async with self._starting.setdefault(key, asyncio.Lock()):
            old = self.clients.get(key)
            if old is not None and not alive(old):
                await self._retire(key, old)
            if key not in self.clients:
                server = self.plan.agents[agent].spec.mcp_servers[name]
                calls = self.calls.setdefault(key, {})
                asker = self._asker(f"{agent}/{name}", server, calls) if self._asker else None
                try:
                    client = await self.connect(
                        f"{agent}/{name}",
                        server,
                        self.backend,
                        lambda: self.sandbox(agent),
                        self.environ,
                        asker,
                    )
                    self.clients[key] = client
                    self.tools[key] = {tool.name: tool for tool in await client.list_tools()}
                except (TransportError, BackendError) as exc:
                    raise StepError(str(exc)) from exc
        return self.clients[key], self.tools[key]

    async def drift(self, step: PlannedStep, action: Action, decision: Decision) -> Decision:
        """The decision, made Red when the live tool differs from the locked one."""
        _, tools = await self.client(step.agent, action.server or "")
        live = tools.get(action.tool or "")
        if live is None:
            raise StepError(f"MCP server {action.server!r} has no tool {action.tool!r}")
        if step.locked_tool is None:
            return decision
        key = (step.agent, action.server or "", action.tool or "")
        if key not in self._changed:  # the live tool is fixed for the session: compare once
            locked = LockedTool.model_validate({**step.locked_tool, "input_schema": {}})
            self._changed[key] = changes(locked, LockedTool.of(live))
        changed = self._changed[key]
        if not changed:
            return decision
        return Decision(
            risk="red",
            policy=decision.policy,
            rule=DRIFT_RULE,
            reason="tool changed since lock: " + "; ".join(changed),
        )

    async def call(self, step: PlannedStep, action: Action, timeout: float) -> Outcome:
        """Call the tool: its outputs, failed with the server's message if it reports an error.

        The images, audio and resources of the result are saved under the run's folder
        (``scheduler.tool_files``): outputs ``files`` and ``dropped``.

        A server that cannot be started or reached fails the step; nothing is raised.
        """
        hints = action.annotations or {}
        idempotent = step.idempotent or hints.get("idempotentHint", False)
        key = (step.agent, action.server or "")
        calls = self.calls.setdefault(key, {})
        calls[step.id] = asyncio.get_running_loop().time() + timeout
        client: ToolClient | None = None
        try:
            client, _ = await self.client(*key)
            if await self.drift(step, action, _GREEN) is not _GREEN:  # a restart changed it
                raise StepError(f"MCP server {action.server!r}: {action.tool!r} changed since lock")
            result = await client.call_tool(
                action.tool or "", dict(action.args), timeout, idempotent
            )
        except StepError as exc:
            return Outcome.failed(str(exc))
        except TransportError as exc:
            gone = client is not None and not alive(client)
            return Outcome.failed(_stopped(str(exc), step, idempotent) if gone else str(exc))
        finally:
            calls.pop(step.id, None)
        outputs = result.outputs()
        if self.folder is not None:
            outputs.update(save(self.folder, step.id, result.contents))
        return Outcome.ended(outputs, f"tool error: {result.text}" if result.is_error else None)

    async def aclose(self) -> None:
        """Disconnect from every server (stdio servers are stopped)."""
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()

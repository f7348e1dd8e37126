"""``luminaguard lock PATH... [--check] [--lock FILE]``: pin what each MCP server offers."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from luminaguard.compiler import load_checked
from luminaguard.compiler.lock import (
    LOCK_FILE,
    LockedServer,
    LockedTool,
    ToolLock,
    load_lock,
    server_differences,
)
from luminaguard.compiler.plan import PlannedAgent
from luminaguard.errors import LuminaGuardError, UsageError
from luminaguard.hostile_text import visible
from luminaguard.hypervisor.base import Backend
from luminaguard.hypervisor.linux import work_disk
from luminaguard.hypervisor.registry import DEFAULT
from luminaguard.scheduler.redact import Redactor
from luminaguard.scheduler.sandbox_set import SandboxSet
from luminaguard.scheduler.sandboxes import absolute_agent, absolute_pool
from luminaguard.scheduler.secrets import environment, secret_references
from luminaguard.scheduler.tools import connect
from luminaguard.ui.exit_codes import INVALID, OK
from luminaguard.ui.session import Session, in_session


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lock`` subcommand."""
    parser = commands.add_parser("lock", help="start each agent's MCP servers and pin their tools")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML files or folders")
    parser.add_argument(
        "--lock", default=LOCK_FILE, metavar="FILE", help=f"lock file (default: {LOCK_FILE})"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the servers differ from the lock",
    )
    parser.add_argument(
        "--backend",
        default=DEFAULT,
        help=f"where the servers start, as in run (default: {DEFAULT})",
    )
    parser.set_defaults(handler=run)


async def _lock_agent(
    name: str, agent: PlannedAgent, sandboxes: SandboxSet
) -> dict[str, LockedServer]:
    servers: dict[str, LockedServer] = {}
    redact = Redactor(secret_references(agent, environment()).values())
    try:
        for server_name, server in sorted(agent.spec.mcp_servers.items()):
            client = await connect(
                f"{name}/{server_name}",
                server,
                sandboxes.backend,
                lambda: sandboxes.get(name, agent),
                environment(),
            )
            try:
                tools = await client.list_tools()
            except LuminaGuardError as exc:  # a server's error may quote its token
                raise UsageError(redact(str(exc))) from None
            finally:
                await client.aclose()
            servers[f"{name}/{server_name}"] = LockedServer(
                tools={t.name: _redacted(LockedTool.of(t), redact) for t in tools}
            )
    finally:
        await sandboxes.aclose()
    return servers


def _redacted(tool: LockedTool, redact: Redactor) -> LockedTool:
    """The tool with its schema's secrets masked: the lock file is committed to git."""
    return tool.model_copy(update={"input_schema": redact.value(tool.input_schema)})


async def live_lock(paths: list[str], backend: Backend) -> ToolLock:
    """What every agent's servers offer now, started on ``backend`` as a run starts them.

    An agent that asks for a micro-VM is refused on a backend that is not one, as in a
    run: its servers never start in a weaker boundary than the one it asked for.
    """
    bundle = load_checked(paths)
    planned = {n: absolute_agent(bundle.planned_agent(n)) for n in bundle.catalog.names("Agent")}
    agents = {name: agent for name, agent in planned.items() if agent.spec.mcp_servers}
    pools = {n: absolute_pool(p) for n, p in bundle.planned_pools(agents.values()).items()}
    servers: dict[str, LockedServer] = {}
    with tempfile.TemporaryDirectory(prefix="luminaguard-lock-") as tmp:
        work = Path(tmp)
        try:
            for name, agent in agents.items():
                sandboxes = SandboxSet(backend, pools, lambda n: work / n / "work", environment())
                servers.update(await _lock_agent(name, agent, sandboxes))
        finally:
            work_disk.detach_all(work)  # the work folders are temporary ones
    return ToolLock(servers=servers)


def _compare(current: ToolLock, locked: ToolLock) -> list[str]:
    found = []
    for key in sorted(set(current.servers) | set(locked.servers)):
        if key not in locked.servers:
            found.append(f"{key}: not in the lock")
        elif key not in current.servers:
            found.append(f"{key}: locked but no longer configured")
        else:
            changed = server_differences(locked.servers[key], current.servers[key])
            found += [f"{key}: {line}" for line in changed]
    return found


@in_session
async def run(args: argparse.Namespace, session: Session) -> int:
    """Write the lock, or check the servers against it."""
    current = await live_lock(args.paths, session.backend(args.backend))
    path = Path(args.lock)
    if not args.check:
        path.write_text(current.to_json(), encoding="utf-8")
        for key, server in sorted(current.servers.items()):
            print(visible(f"{key}: {len(server.tools)} tools"))
        print(f"wrote {path}")
        return OK
    problems = _compare(current, load_lock(path))
    for line in problems:
        print(visible(f"lock: {line}"))
    if problems:
        print(f"{path} is out of date: review the changes, then run:")
        print(f"  luminaguard lock {' '.join(args.paths)} --lock {path}")
        return INVALID
    print(f"{path}: every server matches ({len(current.servers)} servers)")
    return OK

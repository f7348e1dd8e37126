"""Round 2 of attack on the sandbox boundary, state and secrets: what got through.

Each test performs one attack found by the review and asserts that it does not succeed;
they fail until the weakness they name is fixed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.conftest import CliRunner, Writer
from tests.security.conftest import Run

NOBODY = 65534

#: run on the host by an unprivileged runner: one sandbox (user namespace), one command
ROOTLESS_RUN = """
import asyncio, sys
from pathlib import Path
from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.sandbox import SandboxBackend

async def go():
    backend = SandboxBackend()
    handle = await backend.create(SandboxSpec(name="t", workdir=Path(sys.argv[1]) / "work"))
    try:
        result = await backend.exec(handle, sys.argv[2], 30)
    finally:
        await backend.destroy(handle)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)

asyncio.run(go())
"""

#: inside the sandbox: its effective capabilities, and sockets that need CAP_NET_RAW
CAPABILITIES = """
import socket
for line in open("/proc/self/status"):
    if line.startswith("CapEff"):
        print("CapEff", line.split()[1])
for name, args in (("packet", (socket.AF_PACKET, socket.SOCK_RAW, 0)),
                   ("raw", (socket.AF_INET, socket.SOCK_RAW, 1))):
    try:
        socket.socket(*args).close()
        print(name, "open")
    except OSError as exc:
        print(name, "refused", exc.errno)
"""


def _rootless(command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a namespace sandbox started by an unprivileged runner."""
    folder = Path(tempfile.mkdtemp(prefix="lg-rootless-"))
    try:
        prefix: list[str] = []
        if os.getuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("setpriv is needed to run the runner unprivileged")
            os.chown(folder, NOBODY, NOBODY)
            prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        # the system interpreter: a virtual environment may be out of the user's reach
        python = "/usr/bin/python3" if os.getuid() == 0 else sys.executable
        return subprocess.run(
            [*prefix, python, "-c", ROOTLESS_RUN, str(folder), command],
            capture_output=True, text=True, timeout=120, check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_rootless_sandbox_has_no_capabilities() -> None:
    """Attack: as an unprivileged runner's sandbox, use root's capabilities in the user ns.

    Without root, ``sandbox_init.map_user`` maps the runner to uid 0 of a new user
    namespace and ``drop_privileges`` changes nothing: the command runs as uid 0 with
    every capability (``CapEff: 000001ffffffffff``) over its namespaces. Seccomp stops
    the mount and namespace calls, but not what the capabilities open: raw and packet
    sockets (CAP_NET_RAW), netlink configuration of the network namespace, nf_tables
    (CAP_NET_ADMIN), ``sethostname``... the kernel paths most unprivileged-user-namespace
    exploits go through (AF_PACKET: CVE-2017-7308, CVE-2020-14386; nf_tables:
    CVE-2022-1015, CVE-2024-1086). As root the sandbox runs as uid 200000 with none.
    Root cause: ``sandbox_init.child``/``drop_privileges`` (no capability drop when not
    root). Fix: before the exec, set ``SECBIT_NOROOT|SECBIT_NOROOT_LOCKED``, drop every
    capability from the bounding set (``PR_CAPBSET_DROP``) and clear the sets (``capset``),
    or map and switch to a non-zero uid.
    """
    done = _rootless(f"python3 -c '{CAPABILITIES}'")
    assert "CapEff" in done.stdout, done.stdout + done.stderr
    assert "CapEff 0000000000000000" in done.stdout, done.stdout
    assert "packet refused" in done.stdout, done.stdout
    assert "raw refused" in done.stdout, done.stdout


LOCK_AGENT = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: srv, match: {server: echo}, risk: green, reason: test server}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  mounts: [{source: %(data)s, target: /data}, {source: %(site)s, target: /opt/site}]
  mcp_servers:
    echo:
      command: /usr/bin/python3
      args: [/data/server.py]
      env: {PYTHONPATH: /opt/site, API_TOKEN: {from_env: LG_ATTACK_TOKEN}}
  limits: {memory_mib: 256, timeout: 60s}
"""

#: an MCP server whose tool schema carries its token (a default, as careless servers do)
SCHEMA_SERVER = """
import os
from mcp.server.mcpserver import MCPServer

server = MCPServer("echo")
TOKEN = os.environ["API_TOKEN"]


@server.tool()
def fetch(url: str, token: str = TOKEN) -> str:
    \"\"\"Fetch a URL with the account's token.\"\"\"
    return "ok"


server.run()
"""

LOCK_SECRET = "lock-attack-token-7f3a91c2e5"


def test_a_token_in_a_tool_schema_never_reaches_the_lock_file(
    cli: CliRunner, write: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: an MCP server puts its token in a tool's input schema (a parameter default).

    ``luminaguard lock`` starts the agent's servers with their secrets and writes each
    tool's input schema in full into ``luminaguard.lock``, a file meant to be committed
    to git: the token went with it, unredacted (every other path that stores or prints
    what a server says goes through ``Redactor``). Root cause:
    ``ui/commands/lock.py::_lock_agent``/``run`` (no ``Redactor`` over the agent's
    secrets; ``LockedTool.of`` keeps ``input_schema`` as given). Fix: redact the lock's
    values with the agents' secrets (``run_secrets``) before writing or comparing them,
    or refuse to write a lock holding a secret.
    """
    from tests.integration.conftest import sandbox_problem

    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    site = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
    data = tmp_path / "data"
    data.mkdir()
    (data / "server.py").write_text(SCHEMA_SERVER)
    monkeypatch.setenv("LG_ATTACK_TOKEN", LOCK_SECRET)
    path = write("agent.yaml", LOCK_AGENT % {"data": data, "site": site})
    lock = tmp_path / "luminaguard.lock"
    result = cli("lock", str(path), "--lock", str(lock))
    assert result.code == 0, result.out + result.err
    assert LOCK_SECRET not in lock.read_text()
    assert LOCK_SECRET not in result.out + result.err


#: a bare stdio JSON-RPC server: the handshake, then tools/list fails quoting the token
REFUSING_SERVER = """
import json, os, sys
token = os.environ["API_TOKEN"]
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    if message["method"] == "initialize":
        result = {"protocolVersion": message["params"]["protocolVersion"],
                  "capabilities": {"tools": {}}, "serverInfo": {"name": "echo", "version": "1"}}
        reply = {"jsonrpc": "2.0", "id": message["id"], "result": result}
    else:
        error = {"code": -32603, "message": "token rejected: " + token, "data": token}
        reply = {"jsonrpc": "2.0", "id": message["id"], "error": error}
    print(json.dumps(reply), flush=True)
"""


def test_a_token_in_a_server_error_is_not_printed_by_lock(
    cli: CliRunner, write: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: an MCP server answers ``tools/list`` with an error quoting its token.

    ``luminaguard lock`` turns it into ``TransportError("MCP server 'a/echo': tools/list
    failed: token rejected: TOKEN")`` and ``guarded`` prints it as is: the same error
    during ``run`` is redacted (``ToolSet.client`` makes it a step error), but ``lock``
    has no ``Redactor``. A terminal log or CI output of ``lock`` then holds the token.
    Root cause: ``ui/commands/lock.py`` (and ``exit_codes.guarded``, which prints any
    error, tracebacks included, unredacted). Fix: redact ``lock``'s errors and output with
    the agents' secrets (``run_secrets``), e.g. a ``Redactor`` around ``live_lock``.
    """
    from tests.integration.conftest import sandbox_problem

    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    site = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
    data = tmp_path / "data"
    data.mkdir()
    (data / "server.py").write_text(REFUSING_SERVER)
    monkeypatch.setenv("LG_ATTACK_TOKEN", LOCK_SECRET)
    path = write("agent.yaml", LOCK_AGENT % {"data": data, "site": site})
    lock = tmp_path / "luminaguard.lock"
    result = cli("lock", str(path), "--lock", str(lock))
    assert "tools/list" in result.out + result.err, result.out + result.err
    assert LOCK_SECRET not in result.out + result.err

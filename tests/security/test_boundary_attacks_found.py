"""Round 2 of attack on the sandbox boundary, state and secrets: what got through.

Each test performs one attack found by the review and asserts that it does not succeed.
All failed on commit 32eccb4; the commit "boundary: the second review's findings" fixed
1-4 and 6; 5 is open and marked as an expected failure (strict: it flags its own fix):

1. a rootless sandbox (runner not root) runs as uid 0 with every capability in its user
   namespace: raw and packet sockets, netlink configuration (``sandbox_init``);
2. with them, ``open_tree_attr`` (not in the seccomp list) clones a read-only mount
   writable and writes into the host folder behind it; the same call passes the filter
   on the root sandbox too (``seccomp.DENIED``);
3. ``luminaguard lock`` writes a token a server put in a tool's input schema into
   ``luminaguard.lock``, and prints a server error quoting the token (no ``Redactor``);
4. a deep folder tree left in ``/work`` crashes every ``resume`` that hands the folder to
   a new uid (``hand_over``'s recursive ``os.walk``);
5. without a writable cgroup the memory limit bounds each process, not the sandbox;
6. a token cut in two by the 1 MiB output limit is stored half (cut before redaction).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, CliRunner, Writer
from tests.security.conftest import Run, unprivileged_runner

pytestmark = pytest.mark.integration  # every attack runs in a real sandbox

#: run on the host by an unprivileged runner: one sandbox (user namespace), one command
ROOTLESS_RUN = """
import asyncio, os, sys
from pathlib import Path
from luminaguard.hypervisor.base import Mount, SandboxSpec
from luminaguard.hypervisor.sandbox.backend import SandboxBackend

async def go():
    backend = SandboxBackend()
    mounts = tuple(Mount(Path(source), "/data", True) for source in sys.argv[3:])
    memory = int(os.environ.get("LG_MEMORY_MIB", "512"))
    spec = SandboxSpec(name="t", workdir=Path(sys.argv[1]) / "work", mounts=mounts,
                       memory_mib=memory)
    handle = await backend.create(spec)
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


def _rootless(
    command: str, *read_only: Path, memory_mib: int = 512
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a namespace sandbox started by an unprivileged runner.

    Each of ``read_only`` (a folder the runner owns) is mounted read-only at ``/data``.
    """
    folder = Path(tempfile.mkdtemp(prefix="lg-rootless-"))
    try:
        prefix = unprivileged_runner(folder, *read_only)
        # the system interpreter: a virtual environment may be out of the user's reach
        python = "/usr/bin/python3" if os.getuid() == 0 else sys.executable
        return subprocess.run(
            [*prefix, python, "-c", ROOTLESS_RUN, str(folder), command, *map(str, read_only)],
            capture_output=True, text=True, timeout=120, check=False,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "PYTHONPATH": str(ROOT),
                "LG_MEMORY_MIB": str(memory_mib),
            },
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


#: inside the sandbox: a writable clone of the read-only mount at /data (open_tree_attr)
WRITABLE_CLONE = """
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC, MOUNT_ATTR_RDONLY = 1, 0o2000000, 1
attr = ctypes.create_string_buffer(struct.pack("=QQQQ", 0, MOUNT_ATTR_RDONLY, 0, 0), 32)
fd = libc.syscall(NUMBER, -100, b"/data", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC, attr, 32)
print("open_tree_attr", fd, ctypes.get_errno())
if fd >= 0:
    out = os.open("planted.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(out, b"written through a read-only mount")
    print("wrote")
"""

#: open_tree_attr(2), Linux 6.15: the same number on every architecture
OPEN_TREE_ATTR = 467


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64"), reason="x86_64/aarch64")
def test_a_read_only_mount_cannot_be_cloned_writable() -> None:
    """Attack: ``open_tree_attr(OPEN_TREE_CLONE)`` with ``attr_clr = MOUNT_ATTR_RDONLY``.

    The filter denies ``open_tree`` and ``mount_setattr`` but not ``open_tree_attr``
    (number 467, Linux 6.15), which clones a mount and changes its attributes in one
    call. In the rootless sandbox (uid 0 with every capability in its user namespace,
    which owns its mount namespace) it returns a detached, writable copy of the agent's
    read-only mount: ``openat`` beneath it wrote ``planted.txt`` into the host folder the
    agent was given read-only. As root the sandbox has no CAP_SYS_ADMIN and gets EPERM.
    Root cause: ``hypervisor/seccomp.py`` ``DENIED`` (and the per-arch number tables)
    lack ``open_tree_attr``; the capabilities of the previous test make it usable. Fix:
    deny ``open_tree_attr`` (and deny by default any system call newer than the filter,
    i.e. an allow list or a ``nr >= N`` rule, so the next mount API is not missed).
    """
    data = Path(tempfile.mkdtemp(prefix="lg-read-only-"))  # reachable by the runner's user
    try:
        attack = WRITABLE_CLONE.replace("NUMBER", str(OPEN_TREE_ATTR))
        done = _rootless(f"python3 -c '{attack}'", data)
        assert "open_tree_attr" in done.stdout, done.stdout + done.stderr
        assert not (data / "planted.txt").exists(), done.stdout
        assert "wrote" not in done.stdout
    finally:
        shutil.rmtree(data, ignore_errors=True)


#: inside the sandbox: open_tree and its newer twin, on the same path with the same flags
TWINS = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print("open_tree", libc.syscall(428, -100, b"/work", 0), ctypes.get_errno())
print("open_tree_attr", libc.syscall(467, -100, b"/work", 0, None, 0), ctypes.get_errno())
"""


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64"), reason="x86_64/aarch64")
def test_open_tree_attr_is_denied_like_open_tree(
    run_in_sandbox: Run, backend_name: str, tmp_path: Path
) -> None:
    """Attack: call ``open_tree_attr`` where ``open_tree`` is denied (any sandbox uid).

    The filter returns EPERM for ``open_tree`` but lets its Linux 6.15 twin through: the
    mount API the filter means to close is open by another number (harmless as root
    only because that sandbox lacks CAP_SYS_ADMIN; see the rootless test above).
    Root cause and fix: ``hypervisor/seccomp.py`` ``DENIED`` lacks ``open_tree_attr``.
    """
    result = run_in_sandbox(tmp_path, f"python3 -c '{TWINS}'")
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines.get("open_tree") == "-1 1", result.stdout + result.stderr
    assert lines.get("open_tree_attr") in ("-1 1", "-1 38"), result.stdout  # gVisor: ENOSYS


DEEP = "/".join(["d"] * 1100)

DEEP_WORKLOAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  approval: {timeout: 1h}
  rules:
    - {id: dirs, match: {program: mkdir}, risk: green, reason: test}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec: {policy: p}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: deep, agent: a, run: "mkdir -p /work/%s"}
    - {id: ship, agent: a, run: "echo shipped >> /work/ship.log", needs: [deep]}
"""


def test_a_deep_tree_in_work_does_not_crash_the_runner_on_resume(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: a Green step leaves 1,100 nested folders in /work; the run resumes as
    another sandbox uid (the old one taken meanwhile by another runner).

    ``sandbox_users.hand_over`` gives the tree to the new uid with ``os.walk``, which is
    recursive on Python 3.11: ``RecursionError`` escapes ``SandboxBackend.create`` (not a
    ``BackendError``, so not a step failure) and every ``resume`` ends in "internal error"
    (exit 4): the approved step can never run, the agent's files decide. Root cause:
    ``hypervisor/sandbox_users.py::hand_over`` (recursive walk over a tree the sandbox
    shaped). Fix: an iterative walk with ``os.scandir`` and ``dir_fd``/``O_NOFOLLOW``
    opens (no path joins, no recursion), or no walk at all (an idmapped mount of the
    sandbox's own disk); and turn any failure of ``create`` into a ``BackendError``.
    """
    from luminaguard.hypervisor.linux import users as sandbox_users
    from tests.integration.conftest import sandbox_problem

    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    if os.getuid() != 0:
        pytest.skip("sandbox uids and hand-over need root")
    state = tmp_path / "state"
    path = str(write("w.yaml", DEEP_WORKLOAD % DEEP))
    result = cli("run", path, "--state", str(state), "--run-id", "r")
    assert result.code == 3, result.out + result.err
    assert cli("approve", "r", "ship", "--state", str(state)).code == 0
    held = sandbox_users.allocate()  # another runner takes the uid the run had
    try:
        result = cli("resume", "r", "--state", str(state))
    finally:
        held.release()
    assert "internal error" not in result.err, result.err[-600:]
    assert result.code == 0, result.out + result.err[-600:]


#: inside the sandbox: four processes each holding 80 MiB at once, then a report
HOLD_MEMORY = """
import os, time
held = 0
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(80 << 20)
        block[::4096] = b"x" * len(block[::4096])
        time.sleep(3)
        os._exit(0)
    pids.append(pid)
time.sleep(2)
status = [os.waitpid(pid, 0)[1] for pid in pids]
print("held", sum(1 for s in status if s == 0))
"""


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="open: without a writable cgroup the memory limit is RLIMIT_AS per process "
    "(docs/security.md, where the guarantees stop); a delegated cgroup is the fix",
)
def test_a_rootless_sandbox_cannot_exceed_its_memory_limit_with_processes() -> None:
    """Attack: where no cgroup is writable (the rootless sandbox), fork and fill memory.

    The memory limit is then ``RLIMIT_AS``, which bounds each process, not the sandbox:
    with ``memory_mib: 128`` four processes held 80 MiB each (320 MiB) at once, and
    ``pids`` of them could hold ``pids x memory_mib`` (128 x 512 MiB by default). Root
    cause: ``sandbox_init.limit`` (a per-process limit standing in for a per-sandbox one).
    Fix: refuse to run without a memory cgroup (a delegated cgroup v2 subtree via systemd
    ``Delegate=yes`` works rootless), or set ``RLIMIT_AS`` to ``memory_mib / pids`` and say
    so in ``availability``.
    """
    done = _rootless(f"python3 -c '{HOLD_MEMORY}'", memory_mib=128)
    assert "held" in done.stdout, done.stdout + done.stderr
    assert done.stdout.split()[-1] in ("0", "1"), done.stdout


CUT_WORKLOAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: py, match: {kind: run, command: {regex: '^python3 '}}, risk: green, reason: test}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  env: {TOKEN: {from_env: LG_ATTACK_TOKEN}}
  mounts: [{source: %s, target: /data}]
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: log, agent: a, run: python3 /data/log.py}
"""

#: a careless tool: a long log, the token last, placed across the 1 MiB output limit
LONG_LOG = """
import os, sys
sys.stdout.write("x" * ((1 << 20) - 20) + " token=" + os.environ["TOKEN"] + "\\n")
"""

CUT_SECRET = "cut-attack-token-4b8e2d7a19c6f305e1d2"


def test_a_token_cut_by_the_output_limit_never_leaves(
    cli: CliRunner, write: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: the token straddles the 1 MiB output limit (``completion.OUTPUT_LIMIT``).

    The runner keeps the first MiB of stdout and cuts there, then redacts: the cut token
    is no longer the secret, and its first part (here 13 of 37 characters; any length up
    to all but one) was stored in runs.db and the audit log. The split is made by the
    host, not by the program (the redactor's documented limit is a program that
    transforms or splits the secret itself). Root cause: ``hypervisor/completion.py``
    cuts before ``scheduler/redact.py`` sees the text. Fix: redact before cutting (keep
    ``OUTPUT_LIMIT`` plus the longest secret, redact, then cut), or drop a trailing
    prefix of any secret from a cut output.
    """
    from tests.integration.conftest import sandbox_problem

    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    data = tmp_path / "data"
    data.mkdir()
    (data / "log.py").write_text(LONG_LOG)
    monkeypatch.setenv("LG_ATTACK_TOKEN", CUT_SECRET)
    state = tmp_path / "state"
    path = str(write("w.yaml", CUT_WORKLOAD % data))
    result = cli("run", path, "--state", str(state), "--run-id", "r")
    assert result.code == 0, result.out + result.err
    stored = b"".join(p.read_bytes() for p in sorted(state.glob("runs.db*")))
    assert b"x" * 1000 + b" token=" in stored  # the cut output is there
    assert CUT_SECRET[:10].encode() not in stored

"""Every command takes its backend from the registry, and closes it (its pools) at its end.

The backend here is a ``VmBackend`` over a fake Machine (``tests/hypervisor/fake_machine``)
whose VMs are host processes: what is checked is which VMs each command starts, with
what shape, and that none outlives the command.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from luminaguard.hypervisor import registry
from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner, Writer
from tests.hypervisor.fake_machine import FakeVmBackend

DOCUMENTS = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: all, match: {kind: run}, risk: green, reason: test}
    - {id: srv, match: {server: echo}, risk: green, reason: test server}
---
apiVersion: luminaguard.dev/v1
kind: Image
metadata: {name: small}
spec: {rootfs: tiny, memory_mib: 192, vcpus: 2}
---
apiVersion: luminaguard.dev/v1
kind: Pool
metadata: {name: warm}
spec: {image: small, warm: 2, max: 4}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  pool: warm
  env: {AGENT_SETTING: from-agent-a}
%(servers)s---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: one, agent: a, run: "echo one"}
"""

SERVER = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("echo")


@server.tool()
def ping() -> str:
    \"\"\"Answer pong.\"\"\"
    return "pong"


server.run()
"""


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[FakeVmBackend]:
    """Every backend the registry gives out as ``fake-vm``, in order."""
    made: list[FakeVmBackend] = []

    def make() -> FakeVmBackend:
        made.append(FakeVmBackend())
        return made[-1]

    monkeypatch.setitem(registry.BACKENDS, "fake-vm", make)
    return made


@pytest.fixture
def documents(write: Writer, tmp_path: Path) -> Callable[[bool], Path]:
    """The documents above (with an MCP server when asked), and the Image's recipe."""

    def written(with_server: bool) -> Path:
        write("rootfs/tiny.yaml", "tools: []\n")
        servers = ""
        if with_server:
            server = write("server.py", SERVER)
            servers = f"  mcp_servers:\n    echo: {{command: {sys.executable}, args: [{server}]}}\n"
        return write("documents.yaml", DOCUMENTS % {"servers": servers})

    return written


def test_a_runs_warm_pool_vms_are_gone_when_the_run_ends(
    cli: CliRunner, documents: Callable[[bool], Path], tmp_path: Path, opened: list[FakeVmBackend]
) -> None:
    """The pool keeps two clones warm and refills after the step took one; the command's
    session closes the backend at the end, so no VM of the pool is left running."""
    state = tmp_path / "state"
    args = ("--state", str(state), "--run-id", "r", "--backend", "fake-vm")
    result = cli("run", str(documents(False)), *args)
    assert result.code == 0, result.out + result.err
    assert RunStore(state).step("r", "one").outputs["stdout"] == "ran: echo one\n"
    [backend] = opened
    assert backend.fake.snapshots == [(str(tmp_path / "rootfs" / "tiny.yaml"), 192, 2)]
    assert len(backend.fake.vms) >= 3  # the step's clone and two warm ones at least
    assert backend.fake.running() == []


def test_lock_refuses_a_vm_agent_on_the_namespace_sandbox(
    cli: CliRunner, documents: Callable[[bool], Path], tmp_path: Path
) -> None:
    """Attack (on the boundary): ``lock`` always started an agent's MCP servers in the
    namespace sandbox, though the agent asks for a micro-VM and ``run`` refuses to run
    it anywhere weaker. Now ``lock`` takes the backend from the registry, as ``run``
    does, and refuses the same way."""
    lock = tmp_path / "luminaguard.lock"
    result = cli("lock", str(documents(True)), "--lock", str(lock))
    assert result.code == 1, result.out + result.err
    assert "agent 'a' asks for a micro-VM (warm)" in result.err
    assert not lock.exists()


def test_lock_starts_a_vm_agents_servers_in_a_vm_of_its_pool(
    cli: CliRunner, documents: Callable[[bool], Path], tmp_path: Path, opened: list[FakeVmBackend]
) -> None:
    lock = tmp_path / "luminaguard.lock"
    result = cli("lock", str(documents(True)), "--lock", str(lock), "--backend", "fake-vm")
    assert result.code == 0, result.out + result.err
    assert list(json.loads(lock.read_text())["servers"]["a/echo"]["tools"]) == ["ping"]
    [backend] = opened
    assert backend.fake.snapshots == [(str(tmp_path / "rootfs" / "tiny.yaml"), 192, 2)]
    bound = [vm.spec for vm in backend.fake.vms if vm.spec.name == "a"]
    assert [(spec.pool, spec.env) for spec in bound] == [
        ("warm", {"AGENT_SETTING": "from-agent-a"})
    ]
    assert backend.fake.running() == []


def test_pool_status_boots_the_pools_image(
    cli: CliRunner, documents: Callable[[bool], Path], tmp_path: Path, opened: list[FakeVmBackend]
) -> None:
    """Bug: ``pool status`` started every pool from the built-in image with 256 MiB and
    one vCPU, whatever its Image said. Now its snapshot is of the Image's recipe, memory
    and vCPUs, as in a run."""
    result = cli("pool", "status", str(documents(False)), "--backend", "fake-vm")
    assert result.code == 0, result.out + result.err
    assert "2/2" in result.out  # warm/wanted
    [backend] = opened
    assert backend.fake.snapshots == [(str(tmp_path / "rootfs" / "tiny.yaml"), 192, 2)]
    assert backend.fake.running() == []

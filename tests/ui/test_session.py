"""Every command takes its backend from the registry, and closes it (its pools) at its end.

The backend here is a ``VmBackend`` over a fake Machine (``tests/hypervisor/fake_machine``)
whose VMs are host processes: what is checked is which VMs each command starts, with
what shape, and that none outlives the command.
"""

from __future__ import annotations

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

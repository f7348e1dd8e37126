"""The gvisor backend through the whole runner: commands, a real MCP server, orphan reaping.

Its isolation is tested with the namespace sandbox's tests (test_sandbox.py, parametrized).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.gvisor import backend as gvisor
from luminaguard.hypervisor.gvisor import runsc
from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner, Writer
from tests.integration.test_mcp_stdio import AGENT


@pytest.fixture(autouse=True)
def usable() -> None:
    """Skip, with the reason, where gVisor cannot run."""
    available = gvisor.GvisorBackend().availability()
    if not available.usable:
        pytest.skip(f"gvisor backend: {available.detail}")


def test_a_workload_runs_under_gvisor(cli: CliRunner, tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ("--state", str(state), "--run-id", "r", "--backend", "gvisor")
    result = cli("run", "examples/01-hello", *args)
    assert result.code == 3, result.err  # halted at clean_up, which is Red
    greet = RunStore(state).steps("r")["greet"]
    assert greet.state == "succeeded" and greet.outputs["stdout"] == "hello, world\n"


@pytest.mark.slow
@pytest.mark.usefixtures("npm_servers")
def test_an_mcp_server_runs_under_gvisor(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    steps = """\
    - {id: write, agent: a, call: fs.write_file, args: {path: /work/a.txt, content: hi}}
    - {id: read, agent: a, call: fs.read_text_file, args: {path: /work/a.txt}, needs: [write]}
"""
    path = write("w.yaml", AGENT + steps)
    lock = tmp_path / "luminaguard.lock"
    assert cli("lock", str(path), "--lock", str(lock)).code == 0
    state = tmp_path / "state"
    args = ("--state", str(state), "--run-id", "r", "--lock", str(lock), "--backend", "gvisor")
    result = cli("run", str(path), *args)
    assert result.code == 0, result.err
    read = RunStore(state).steps("r")["read"]
    assert read.outputs["text"] == "hi", json.dumps(read.outputs)
    assert (state / "runs" / "r" / "agents" / "a" / "work" / "a.txt").read_text() == "hi"


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.slow
def test_containers_of_a_dead_runner_are_deleted_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gvisor, "STATE", tmp_path / "runsc")
    backend = gvisor.GvisorBackend()
    orphan = f"lg-{_dead_pid()}-0123456789"
    monkeypatch.setattr(runsc.Runsc, "container_id", lambda self: orphan)

    async def leave_one_running() -> None:
        handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work"))
        process = await backend.spawn(handle, ["sleep", "600"])
        await asyncio.sleep(1)
        process.process.kill()  # the runner dies: `runsc run` goes, the sandbox stays
        await process.process.wait()

    asyncio.run(leave_one_running())
    assert orphan in backend.runsc.containers()
    assert gvisor.GvisorBackend().runsc.reap_orphans() == []  # the first use already reaped it
    assert orphan not in backend.runsc.containers()
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", orphan], capture_output=True, text=True).stdout
    assert left == "", left


@pytest.mark.slow
def test_no_container_state_is_left_without_cgroups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no cgroup is writable, containers are still deleted, even killed ones."""
    import functools

    from luminaguard.hypervisor.linux import cgroups

    monkeypatch.setattr(gvisor, "STATE", tmp_path / "runsc")
    monkeypatch.setattr(
        gvisor, "CgroupLimits", functools.partial(cgroups.CgroupLimits, kind="none")
    )
    backend = gvisor.GvisorBackend()

    async def go() -> None:
        handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work"))
        process = await backend.spawn(handle, ["sleep", "600"])
        await asyncio.sleep(1)
        process.process.kill()  # `runsc run` dies without cleaning up after its container
        await process.wait()
        await backend.destroy(handle)

    asyncio.run(go())
    assert backend.runsc.containers() == []

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


def _slow_to_start(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """``runsc run`` starts ``seconds`` late, as on a loaded machine."""
    run_argv = runsc.Runsc.run_argv

    def late(
        self: runsc.Runsc, container: str, bundle: Path, created: Path | None = None
    ) -> list[str]:
        command = run_argv(self, container, bundle, created)
        return ["/bin/sh", "-c", f'sleep {seconds}; exec "$@"', "sh", *command]

    monkeypatch.setattr(runsc.Runsc, "run_argv", late)


def test_the_timeout_counts_from_the_start_of_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gVisor's start-up is not the command's: a slow start leaves it its whole timeout.

    Under load runsc took longer than the steps' timeouts to start; the commands never
    ran and the steps failed as timed out, with empty output.
    """
    _slow_to_start(monkeypatch, 3)

    async def go() -> tuple[bool, str, float]:
        backend = gvisor.GvisorBackend()
        handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work"))
        try:
            result = await backend.exec(handle, "echo ran", 2)
        finally:
            await backend.destroy(handle)
        return result.ok, result.stdout, result.duration

    ok, stdout, duration = asyncio.run(go())
    assert (ok, stdout) == (True, "ran\n")
    assert duration < 3  # the three seconds before runsc ran are not the command's


def test_a_sandbox_that_does_not_start_in_time_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past START_TIMEOUT the start-up is killed (nothing of it left) and the error says so."""
    from luminaguard.hypervisor.base import BackendError
    from luminaguard.hypervisor.linux.cgroups import CgroupLimits

    _slow_to_start(monkeypatch, 600)
    monkeypatch.setattr(gvisor, "START_TIMEOUT", 1.0)
    groups: list[Path] = []
    create = CgroupLimits.create

    def recorded(self: CgroupLimits) -> list[str]:
        procs = create(self)
        groups.extend(self.dirs)
        return procs

    monkeypatch.setattr(CgroupLimits, "create", recorded)

    async def go() -> str:
        backend = gvisor.GvisorBackend()
        handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work"))
        try:
            with pytest.raises(BackendError) as raised:
                await backend.exec(handle, "echo ran", 30)
            assert handle.processes == set()  # type: ignore[attr-defined]
        finally:
            await backend.destroy(handle)
        return str(raised.value)

    assert asyncio.run(go()) == "gVisor did not start the sandbox within 1s; it was killed"
    assert groups and not any(group.exists() for group in groups)  # emptied, then removed

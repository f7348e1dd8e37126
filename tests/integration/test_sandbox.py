"""The isolating backends, for real: namespaces and gVisor pass the same isolation tests."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import Backend, ExecResult, Mount, SandboxSpec
from luminaguard.hypervisor.gvisor.backend import GvisorBackend
from luminaguard.hypervisor.linux.cgroups import CgroupLimits, hierarchy
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from tests.integration.conftest import use_zygote

Run = Callable[..., ExecResult]


@pytest.fixture(params=["sandbox", "sandbox-python-zygote", "gvisor"])
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each isolating backend in turn; skipped, with the reason, where it cannot run.

    The namespace sandbox twice: with the compiled zygote (where a C compiler built it)
    and with the Python zygote that serves where none could.
    """
    if request.param.startswith("sandbox"):
        request.getfixturevalue("sandbox")
        use_zygote(request, "python" if request.param.endswith("zygote") else "compiled")
        return "sandbox"
    else:
        available = GvisorBackend().availability()
        if not available.usable:
            pytest.skip(f"gvisor backend: {available.detail}")
    return str(request.param)


@pytest.fixture
def run_in_sandbox(backend_name: str) -> Run:
    """Run one command in a fresh sandbox of the backend under test."""

    def run(tmp_path: Path, command: str, timeout: float = 20, **spec: object) -> ExecResult:
        async def go() -> ExecResult:
            backend: Backend = SandboxBackend() if backend_name == "sandbox" else GvisorBackend()
            handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work", **spec))  # type: ignore[arg-type]
            try:
                return await backend.exec(handle, command, timeout)
            finally:
                await backend.destroy(handle)

        return asyncio.run(go())

    return run


def in_namespaces(tmp_path: Path, command: str, timeout: float = 20, **spec: object) -> ExecResult:
    """Run one command in a fresh namespace sandbox (a backend and zygote of its own)."""

    async def go() -> ExecResult:
        backend = SandboxBackend()
        handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work", **spec))  # type: ignore[arg-type]
        try:
            return await backend.exec(handle, command, timeout)
        finally:
            await backend.destroy(handle)
            await backend.aclose()

    return asyncio.run(go())


class Listener:
    """A TCP server on the host's loopback that counts the connections it accepts."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        self.server.settimeout(0.2)
        while not self.stop.is_set():
            try:
                self.server.accept()[0].close()
            except OSError:
                continue
            self.accepted += 1


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A counting TCP server on the host's loopback, for as long as the test runs."""
    found = Listener()
    found.thread.start()
    yield found
    found.stop.set()
    found.thread.join()
    found.server.close()


def test_a_command_runs_as_an_unprivileged_user(tmp_path: Path, run_in_sandbox: Run) -> None:
    result = run_in_sandbox(tmp_path, "id -u; hostname; pwd; echo $HOME")
    assert result.ok, result.stderr
    uid, host, cwd, home = result.stdout.split()
    if os.getuid() == 0:  # the sandbox's own uid, from the runner's range; not nobody
        assert int(uid) >= 200000 and uid != "65534"
    else:
        assert uid == "0"
    assert (host, cwd, home) == ("luminaguard", "/work", "/work")


def test_the_host_network_is_unreachable(
    tmp_path: Path, listener: Listener, run_in_sandbox: Run
) -> None:
    probe = f"import socket; socket.create_connection(('127.0.0.1', {listener.port}), timeout=3)"
    # the host side works: the listener accepts from outside the sandbox
    socket.create_connection(("127.0.0.1", listener.port), timeout=3).close()
    result = run_in_sandbox(tmp_path, f'python3 -c "{probe}"')
    assert result.exit_code != 0
    # the sandbox's loopback is its own: nothing listens there (gVisor) or it is down (namespaces)
    assert any(f"[Errno {n}]" in result.stderr for n in (101, 111)), result.stderr
    time.sleep(0.3)
    assert listener.accepted == 1  # the host's own connection, none from the sandbox
    interfaces = run_in_sandbox(tmp_path, "cat /proc/net/dev").stdout
    assert "lo:" in interfaces and "eth" not in interfaces


def test_nothing_outside_the_work_folder_is_writable(tmp_path: Path, run_in_sandbox: Run) -> None:
    for target in ("/etc/x", "/usr/x", "/x", "/bin/x", "/data/x"):
        result = run_in_sandbox(tmp_path, f"echo bad > {target}")
        assert result.exit_code != 0, target
    assert run_in_sandbox(tmp_path, "echo good > /work/ok && cat /work/ok").stdout == "good\n"
    assert (tmp_path / "work" / "ok").read_text() == "good\n"


def test_the_sandbox_tmp_is_private(tmp_path: Path, run_in_sandbox: Run) -> None:
    marker = f"luminaguard-private-{os.getpid()}"
    assert run_in_sandbox(tmp_path, f"echo x > /tmp/{marker}").ok
    assert not Path("/tmp", marker).exists()


def test_host_files_outside_the_system_folders_are_invisible(
    tmp_path: Path, run_in_sandbox: Run
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    result = run_in_sandbox(tmp_path, f"cat {secret}; ls /root; ls /home")
    assert "s3cret" not in result.stdout
    assert result.exit_code != 0


def test_host_processes_are_invisible(tmp_path: Path, run_in_sandbox: Run) -> None:
    result = run_in_sandbox(tmp_path, "ls /proc | grep -E '^[0-9]+$'; cat /proc/1/cmdline")
    pids = [int(line) for line in result.stdout.splitlines() if line.isdigit()]
    assert max(pids) < 10 and len(pids) <= 4, pids
    assert str(os.getpid()) not in result.stdout.split()
    assert "pytest" not in result.stdout


def test_read_only_mount(tmp_path: Path, run_in_sandbox: Run) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("hello")
    mount = (Mount(data, "/data/in", read_only=True),)
    assert run_in_sandbox(tmp_path, "cat /data/in/in.txt", mounts=mount).stdout == "hello"
    assert not run_in_sandbox(tmp_path, "echo x > /data/in/new", mounts=mount).ok


def test_memory_limit_fails_cleanly(tmp_path: Path, run_in_sandbox: Run) -> None:
    result = run_in_sandbox(
        tmp_path, "python3 -c 'x = bytearray(300 * 1024 * 1024); print(len(x))'", memory_mib=64
    )
    assert not result.ok
    assert result.failure() in ("killed: over its memory limit", "exited with code 1")
    assert "314572800" not in result.stdout


def test_process_limit(tmp_path: Path, run_in_sandbox: Run) -> None:
    result = run_in_sandbox(tmp_path, "for i in $(seq 40); do sleep 5 & done; wait", pids=8)
    assert not result.ok
    assert "fork" in result.stderr.lower() or "resource" in result.stderr.lower()


@pytest.mark.slow
def test_cpu_time_limit(
    tmp_path: Path, run_in_sandbox: Run, backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop is ended by its CPU time as the kernel counts it, not by the wall clock.

    A loaded machine gives the loop a small share of a core: its 1 s of CPU can take
    tens of seconds of wall time, so the timeout is only a guard against a limit
    that does not work.
    """
    used: list[float] = []
    remove = CgroupLimits.remove

    def measured(self: CgroupLimits) -> None:  # the CPU time, read before the cgroup goes
        seconds = self.cpu_seconds()
        if seconds is not None:
            used.append(seconds)
        remove(self)

    monkeypatch.setattr(CgroupLimits, "remove", measured)
    result = run_in_sandbox(tmp_path, "while :; do :; done", cpu_seconds=1, timeout=120)
    assert not result.ok and not result.timed_out
    # namespaces: the shell itself is killed; gVisor: the host kills the sandbox's process
    # running the loop, and gVisor reports the application's end as exit status 1
    expected = {
        "sandbox": ("killed by signal 9", "killed by signal 24"),
        "gvisor": ("exited with code 1",),
    }
    assert result.failure() in expected[backend_name]
    if used:  # the soft limit was reached, and the hard one (a second more) not passed
        assert 1 <= sum(used) < 3, used


def test_timeout_kills_the_whole_sandbox(tmp_path: Path, run_in_sandbox: Run) -> None:
    result = run_in_sandbox(tmp_path, "sleep 30 & sleep 30; echo never", timeout=0.5)
    assert result.timed_out and "never" not in result.stdout
    # the output ended long before the sleeps would have ended it: the background one,
    # which holds stdout too, was killed with the shell
    assert result.duration < 30
    assert result.failure() is not None and "timed out" in result.failure()  # type: ignore[operator]


@pytest.fixture
def created_cgroups(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders of every cgroup the sandboxes of the test create, as they are created."""
    groups: list[Path] = []
    create = CgroupLimits.create

    def recorded(self: CgroupLimits) -> list[str]:
        joins = create(self)
        groups.extend(self.dirs)
        return joins

    monkeypatch.setattr(CgroupLimits, "create", recorded)
    return groups


def test_no_cgroup_is_left_behind(
    tmp_path: Path, run_in_sandbox: Run, created_cgroups: list[Path]
) -> None:
    """Each command's cgroups are removed after it, though its last process leaves late.

    A process closes its pipes a moment before the kernel takes it out of its cgroups;
    they were removed in that moment (EBUSY, ignored) for about a third of the commands.
    """
    groups = created_cgroups
    for _ in range(5):
        assert run_in_sandbox(tmp_path, "true").ok
    assert [group for group in groups if group.exists()] == []


def test_output_is_capped(tmp_path: Path, run_in_sandbox: Run) -> None:
    result = run_in_sandbox(tmp_path, "head -c 3000000 /dev/zero | tr '\\0' a")
    assert result.ok and result.truncated
    assert len(result.stdout) == 1 << 20


def test_setup_failure_is_reported(tmp_path: Path, run_in_sandbox: Run) -> None:
    missing = (Mount(tmp_path / "nope", "/data/nope"),)
    result = run_in_sandbox(tmp_path, "true", mounts=missing)
    assert result.exit_code == 125
    said = result.failure() or ""
    assert "luminaguard-sandbox: mount " in said and f"{tmp_path}/nope" in said, said


@pytest.mark.usefixtures("sandbox")
def test_the_sandbox_backends_zygote_stops_when_the_backend_closes(tmp_path: Path) -> None:
    async def go() -> int | None:
        async with SandboxBackend() as backend:
            handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work"))
            assert (await backend.exec(handle, "true", 20)).ok
            await backend.destroy(handle)
            zygote = backend.zygote._process
            assert zygote is not None and zygote.poll() is None  # serving while open
        return zygote.poll()

    assert asyncio.run(go()) is not None


@pytest.mark.usefixtures("sandbox")
def test_a_cancelled_command_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelling an exec (a run cancelled, a server stopping) ends its command with it.

    The command was left running, out of every list, so that destroying the sandbox
    did not kill it either: a cancelled run's step went on writing to /work.
    """
    groups: list[Path] = []
    create = CgroupLimits.create

    def recorded(self: CgroupLimits) -> list[str]:
        procs = create(self)
        groups.extend(self.dirs)
        return procs

    monkeypatch.setattr(CgroupLimits, "create", recorded)
    mark = f"cancelled-{os.getpid()}-{time.monotonic_ns()}"

    def commands() -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if mark.encode() in Path("/proc", pid, "cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                continue
        return found

    async def go() -> list[str]:
        async with SandboxBackend() as backend:
            handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work"))
            try:
                command = f"sleep 30; echo {mark} > /work/late"
                running = asyncio.ensure_future(backend.exec(handle, command, 60))
                deadline = time.monotonic() + 30
                while not commands():
                    assert time.monotonic() < deadline, "the command never started"
                    await asyncio.sleep(0.02)
                running.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await running
                return commands()  # once the cancelled exec has returned
            finally:
                await backend.destroy(handle)

    assert asyncio.run(go()) == []
    assert not (tmp_path / "work" / "late").exists()
    assert [group for group in groups if group.exists()] == []


def test_the_command_is_in_each_of_its_cgroups(
    tmp_path: Path, sandbox: None, created_cgroups: list[Path]
) -> None:
    """PID 1 joins by writing ``0`` (itself alone: see ``cgroups.JOIN_FILE``), so what it
    forks and execs, the command, is in every one of the sandbox's cgroups."""
    groups = created_cgroups
    result = in_namespaces(tmp_path, "cat /proc/self/cgroup")
    if not groups:
        pytest.skip("no writable cgroups here: limits are rlimits")
    assert result.ok, result
    lines = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in result.stdout.splitlines()}
    for group in groups:  # v1: ROOT/CONTROLLER/luminaguard/NAME; v2: ROOT/luminaguard/NAME
        controller = group.parent.parent.name if hierarchy() == "v1" else ""
        kind = next(key for key in lines if controller in key.split(","))
        assert lines[kind].endswith(f"/luminaguard/{group.name}"), (group, result.stdout)


def test_a_command_killed_by_its_cgroup_s_memory_limit_is_said_to_be(
    tmp_path: Path, sandbox: None
) -> None:
    """With cgroups, the kernel's OOM kill is read from the memory cgroup (one file)."""
    if hierarchy() == "none":
        pytest.skip("no writable cgroups here: the memory limit is an rlimit")

    result = in_namespaces(tmp_path, "python3 -c 'x = bytearray(300 << 20)'", 60, memory_mib=64)
    assert result.failure() == "killed: over its memory limit", result


def test_a_command_gets_the_runner_s_open_file_limit(tmp_path: Path, sandbox: None) -> None:
    """The zygote raises its own limit (a status pipe per live sandbox), never a command's."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard, 1000), hard))  # below the hard
    try:
        result = in_namespaces(tmp_path, "ulimit -n")  # a new zygote, with the lowered limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert result.ok, result
    assert result.stdout.strip() == str(min(soft, hard, 1000))

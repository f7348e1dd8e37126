"""Attack round 18: the zygote that clones each sandbox's PID 1 and reports its exit."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.linux.completion import DRAIN_SECONDS
from luminaguard.hypervisor.sandbox import zygote as zygote_module
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from luminaguard.hypervisor.sandbox.zygote import SandboxProcess, Zygote
from tests.conftest import ROOT
from tests.integration.conftest import sandbox_problem
from tests.security.conftest import unprivileged_runner


@pytest.fixture
def sandbox() -> None:
    """Skip (with the reason) where Linux namespaces cannot be created."""
    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)


def test_a_dropped_status_pipe_does_not_kill_the_other_sandboxes(
    sandbox: None, tmp_path: Path
) -> None:
    """The host drops one sandbox's status pipe (a spawn cancelled while it read the pid,
    an event loop gone with a server in it). The zygote wrote that sandbox's exit there,
    got EPIPE, and died of the BrokenPipeError: every other live sandbox died with it
    (PR_SET_PDEATHSIG), a long-lived server killed by another agent's cancellation. A
    report that cannot be delivered is now dropped; the zygote serves on."""

    async def go() -> tuple[int | None, int | None]:
        backend = SandboxBackend()
        handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work"))
        try:
            other = await backend.spawn(handle, ["/bin/sh", "-c", "sleep 30"])
            zygote = backend.zygote.pid
            dropped = await backend.spawn(handle, ["/bin/sh", "-c", "sleep 0.3"])
            dropped._status._transport.close()  # type: ignore[attr-defined]
            await asyncio.sleep(1.5)  # its exit reported on the closed pipe
            with pytest.raises(TimeoutError):  # the other server still runs
                await asyncio.wait_for(asyncio.shield(other.wait()), 0.5)
            after = backend.zygote.pid
            other.kill()
            return zygote, after
        finally:
            await backend.destroy(handle)
            await backend.aclose()

    zygote, after = asyncio.run(go())
    assert after == zygote is not None


def test_a_kill_before_pid_1_leads_its_group_is_not_lost() -> None:
    """The zygote reports a sandbox's pid as soon as clone returns, before the child has
    called setsid. ``kill`` sent SIGKILL to the process group alone, which did not exist
    yet: a run cancelled (or a sandbox destroyed) right after a spawn left the command
    running, and the cancelled exec then waited for it to end by itself (8 of 40 such
    kills were lost here). PID 1 is now killed by its pid as well."""
    child = subprocess.Popen(["sleep", "30"])  # in our process group: it leads none
    try:
        pidfd = os.pidfd_open(child.pid)
        SandboxProcess(child.pid, None, None, None, None, pidfd).kill()  # type: ignore[arg-type]
        os.close(pidfd)
        assert child.wait(timeout=5) == -9
    finally:
        child.kill()
        child.wait()


def test_a_cancel_right_after_spawn_kills_the_command(sandbox: None, tmp_path: Path) -> None:
    """The same, end to end: each command killed the moment its pid is known ends at once."""

    async def go() -> list[float]:
        backend = SandboxBackend()
        handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work"))
        took = []
        try:
            for _ in range(15):
                args = [*backend._helper_args(handle, []), "--", "/bin/sleep", "20"]
                process = await backend.zygote.spawn(args)
                process.kill()
                start = asyncio.get_running_loop().time()
                await asyncio.wait_for(process.wait(), 10)
                took.append(asyncio.get_running_loop().time() - start)
        finally:
            await backend.destroy(handle)
            await backend.aclose()
        return took

    assert max(asyncio.run(go())) < 2


#: run by an unprivileged runner: sandbox A holds 30 processes, B (pids 32 too) forks 5
SHARED_COUNT = """
import asyncio, sys
from pathlib import Path
from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.linux.completion import DRAIN_SECONDS
from luminaguard.hypervisor.linux.system import NOBODY
from luminaguard.hypervisor.sandbox.backend import SandboxBackend

async def go():
    backend = SandboxBackend()
    base = Path(sys.argv[1])
    a = await backend.create(SandboxSpec(name="a", workdir=base / "a", pids=32))
    b = await backend.create(SandboxSpec(name="b", workdir=base / "b", pids=32))
    hog = await backend.spawn(a, ["/bin/sh", "-c", "for i in $(seq 30); do sleep 30 & done; wait"])
    try:
        await asyncio.sleep(1)
        command = "for i in 1 2 3 4 5; do sleep 0.1 & done; wait; echo forked"
        result = await backend.exec(b, command, 20)
        print(result.exit_code, result.stdout.strip(), result.stderr.strip())
    finally:
        hog.kill()
        await hog.wait()
        await backend.destroy(a)
        await backend.destroy(b)
        await backend.aclose()

asyncio.run(go())
"""


def test_a_rootless_sandbox_cannot_use_up_another_sandboxs_process_limit() -> None:
    """Not root, and so without cgroups, ``pids`` is RLIMIT_NPROC, which the kernel counts
    per user of a user namespace. The zygote made one user namespace for all its
    sandboxes: every sandbox's processes counted against each sandbox's limit, and one
    holding 30 processes left another (``pids: 32``) unable to fork at all ("Cannot
    fork"). Each sandbox is now cloned into a user namespace of its own, as it was
    before the zygote cloned them itself."""
    folder = Path(tempfile.mkdtemp(prefix="lg-rootless-"))
    try:
        prefix = unprivileged_runner(folder)
        python = "/usr/bin/python3" if os.getuid() == 0 else sys.executable
        done = subprocess.run(
            [*prefix, python, "-c", SHARED_COUNT, str(folder)],
            capture_output=True, text=True, timeout=120, check=False, cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert done.stdout.split()[:2] == ["0", "forked"], done.stdout + done.stderr


def test_a_failed_clone_is_not_taken_for_a_sandbox_with_its_exit_code_as_pid() -> None:
    """When the zygote cannot clone (EAGAIN at a process limit, ENOSPC at the namespace
    limits) it writes only ``exit 125``. The host read that first line as ``pid 125``:
    a SandboxProcess for host pid 125, which a timeout, cancel or destroy then sent
    SIGKILL (and its group, 125); its status read as 137, killed. Now only ``pid N``
    starts a sandbox; anything else is an error, as a missing line was."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def refuse() -> None:  # a zygote whose clone failed
        _, fds, _, _ = socket.recv_fds(theirs, 1 << 20, 4)
        os.write(fds[3], b"exit 125\n")
        for fd in fds:
            os.close(fd)

    zygote = Zygote()
    zygote._started = lambda: ours  # type: ignore[method-assign]
    server = threading.Thread(target=refuse)
    server.start()
    try:
        with pytest.raises(OSError, match="started no sandbox"):
            asyncio.run(zygote.spawn(["workdir=/nonexistent", "--", "true"]))
    finally:
        server.join()
        ours.close()
        theirs.close()


#: a server in the agent's sandbox that takes the file descriptors handed to it, and keeps them
HOLD = """
import socket, time
server = socket.socket(socket.AF_UNIX)
server.bind("/work/hold.sock")
server.listen(1)
connection, _ = server.accept()
kept = socket.recv_fds(connection, 10, 4)
time.sleep(1000)
"""

#: a command that hands its stdout and stderr to that server, then ends
HAND_OVER = """
import socket, time
for _ in range(200):
    try:
        connection = socket.socket(socket.AF_UNIX)
        connection.connect("/work/hold.sock")
        break
    except OSError:
        time.sleep(0.05)
socket.send_fds(connection, [b"x"], [1, 2])
"""


def test_a_command_cannot_outlast_its_timeout_by_handing_its_output_away(
    sandbox: None, tmp_path: Path
) -> None:
    """Two sandboxes of one agent share its /work: a command passed its stdout and stderr
    over a Unix socket there to a long-lived process of the agent (an MCP server, a
    parallel step) and ended. Its pipes never reached EOF, and after the timeout's kill
    the exec waited for the rest of the output without bound: the step hung until the
    holder died (for a server, never). The output is now drained for DRAIN_SECONDS after
    the kill, then left."""
    workdir = tmp_path / "work"

    async def go() -> tuple[float, bool]:
        backend = SandboxBackend()
        handle = await backend.create(SandboxSpec(name="t", workdir=workdir))
        (workdir / "hold.py").write_text(HOLD)
        (workdir / "hand.py").write_text(HAND_OVER)
        server = await backend.spawn(handle, ["python3", "/work/hold.py"])
        try:
            start = time.monotonic()
            result = await asyncio.wait_for(backend.exec(handle, "python3 /work/hand.py", 1), 20)
            return time.monotonic() - start, result.timed_out
        finally:
            server.kill()
            await backend.destroy(handle)
            await backend.aclose()

    took, timed_out = asyncio.run(go())
    # since attack 19 the exec ends with its command (the rest of the output drained
    # DRAIN_SECONDS at most after the exit), not at the timeout: not timed out
    assert not timed_out
    assert took < 1 + DRAIN_SECONDS + 2


def test_a_kill_after_pid_1_was_reaped_cannot_hit_the_process_reusing_its_pid(
    sandbox: None, tmp_path: Path
) -> None:
    """``kill`` signalled PID 1 by its number. Once the zygote has reaped it that number is
    free, and the host still kills when a timeout fires: a command that hands its output
    away (see above) ends at once yet keeps its exec waiting for the timeout, while the
    agent's other process forks through the pids (pid_max 32768 here: seconds). The
    root runner then SIGKILLed whatever host process had the number. Simulated here by
    giving the ended sandbox's pid to a host process; kill now goes through a pidfd taken
    when the pid was reported."""

    async def go() -> bool:
        backend = SandboxBackend()
        handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work"))
        victim = subprocess.Popen(["sleep", "30"], start_new_session=True)
        try:
            process = await backend.spawn(handle, ["/bin/true"])
            for _ in range(500):  # until the zygote has reaped it (not through our wait)
                if not Path(f"/proc/{process.pid}").exists():
                    break
                await asyncio.sleep(0.01)
            process.pid = victim.pid  # its number, now another process's
            process.kill()
            await asyncio.sleep(0.2)
            return victim.poll() is None
        finally:
            victim.kill()
            victim.wait()
            await backend.destroy(handle)
            await backend.aclose()

    assert asyncio.run(go())


def test_a_spawn_cancelled_half_way_leaves_no_sandbox_running(
    sandbox: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spawn cancelled after the zygote reported the pid (while its pipes were being
    wrapped) left the sandbox running with nobody to wait for it, kill it at its timeout
    or close its pipes (raw fds, never closed): where no cgroup is writable, nothing
    removed it, and as root only the cgroups did. The sandbox is now killed and what was
    opened for it closed."""

    async def cancelled(fd: int) -> None:
        os.close(fd)
        raise asyncio.CancelledError

    monkeypatch.setattr(zygote_module, "_writer", cancelled)

    async def go() -> list[str]:
        backend = SandboxBackend()
        handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work"))
        try:
            args = [*backend._helper_args(handle, []), "--", "/bin/sleep", "30"]
            with pytest.raises(asyncio.CancelledError):
                await backend.zygote.spawn(args)
            await asyncio.sleep(0.5)
            zygote = backend.zygote.pid
            return Path(f"/proc/{zygote}/task/{zygote}/children").read_text().split()
        finally:
            await backend.destroy(handle)
            await backend.aclose()

    assert asyncio.run(go()) == []

"""Every backend, the fake included, through one sandbox's whole life.

Create; a command that succeeds, one that fails, one past its timeout and one after it;
the environment; the work folder; a process spawned and talked to over its pipes; destroy,
after which nothing of the sandbox remains. Every backend in ``registry.BACKENDS`` is
driven here with no change to this file; one that cannot run on this machine skips with
the reason its ``availability()`` gives. The fake (which runs nothing) is scripted to
answer as a real sandbox does, so the same assertions hold for it.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor import registry
from luminaguard.hypervisor.base import Backend, SandboxHandle, SandboxProcess, SandboxSpec
from luminaguard.hypervisor.fake import FakeBackend, FakeProcess, Outcome

TIMEOUT = 0.5  # the timeout of the command that would sleep for 30 s
PATIENCE = 120.0  # for what should end: a cold VM boot under software emulation is slow
FAIL = "echo oops >&2; exit 3"
ENV = 'echo "$LG_SPEC"'
MARK = "echo contract > mark && cat /work/mark"
TALKER = ["/bin/sh", "-c", 'echo "$LG_SPEC $LG_SPAWN"; exec cat']


async def _cat(process: FakeProcess) -> int:
    while line := await process.input.readline():
        process.emit(line)
    return 0


async def _greet_then_cat(process: FakeProcess) -> int:
    process.emit(f"{process.env.get('LG_SPEC', '')} {process.env.get('LG_SPAWN', '')}\n".encode())
    return await _cat(process)


def scripted_fake() -> FakeBackend:
    """The fake, answering this contract's commands as a real sandbox does."""
    fake = FakeBackend()
    fake.on("echo hello", Outcome(stdout="hello\n"))
    fake.on(FAIL, Outcome(exit_code=3, stderr="oops\n"))
    fake.on("sleep 30", Outcome(delay=30))
    fake.on("echo alive", Outcome(stdout="alive\n"))
    fake.on(ENV, Outcome(stdout="from-spec\n"))
    fake.on("pwd", Outcome(stdout="/work\n"))
    fake.on(MARK, Outcome(stdout="contract\n"))
    fake.on_spawn(shlex.join(TALKER), _greet_then_cat)
    fake.on_spawn("cat", _cat)
    return fake


def _cases() -> Iterator[object]:
    yield pytest.param(scripted_fake, id="fake")
    for name, make in registry.BACKENDS.items():
        marks = [pytest.mark.integration] + ([pytest.mark.vm] if make().micro_vm else [])
        yield pytest.param(make, id=name, marks=marks)


@pytest.fixture(params=list(_cases()))
def backend(request: pytest.FixtureRequest) -> Backend:
    make: Callable[[], Backend] = request.param
    found = make()
    available = found.availability()
    if not available.usable:
        pytest.skip(f"{found.name}: {available.detail}")
    return found


def _shares_work(backend: Backend) -> bool:
    """Whether the host work folder is the sandbox's /work (a VM's is its own; the fake's
    commands write nothing)."""
    return not backend.micro_vm and not isinstance(backend, FakeBackend)


async def _commands(backend: Backend, handle: SandboxHandle) -> None:
    ok = await backend.exec(handle, "echo hello", PATIENCE)
    assert (ok.ok, ok.exit_code, ok.stdout) == (True, 0, "hello\n"), ok
    bad = await backend.exec(handle, FAIL, PATIENCE)
    assert (bad.ok, bad.exit_code, bad.stdout, bad.stderr) == (False, 3, "", "oops\n"), bad
    assert bad.failure() == "exited with code 3"


async def _timeout(backend: Backend, handle: SandboxHandle) -> None:
    started = time.monotonic()
    late = await backend.exec(handle, "sleep 30", TIMEOUT)
    assert late.timed_out and not late.ok, late
    assert time.monotonic() - started < 30  # it was stopped, not waited for
    again = await backend.exec(handle, "echo alive", PATIENCE)
    assert (again.ok, again.stdout) == (True, "alive\n"), again


async def _environment_and_work(backend: Backend, handle: SandboxHandle, workdir: Path) -> None:
    env = await backend.exec(handle, ENV, PATIENCE)
    assert env.stdout == "from-spec\n", env
    where = await backend.exec(handle, "pwd", PATIENCE)
    assert where.stdout == "/work\n", where
    mark = await backend.exec(handle, MARK, PATIENCE)
    assert mark.stdout == "contract\n", mark
    if _shares_work(backend):
        assert (workdir / "mark").read_text() == "contract\n"


async def _line(process: SandboxProcess) -> bytes:
    assert process.stdout is not None
    return await asyncio.wait_for(process.stdout.readline(), PATIENCE)


async def _say(process: SandboxProcess, line: bytes) -> bytes:
    assert process.stdin is not None
    process.stdin.write(line)
    await process.stdin.drain()
    return await _line(process)


async def _pipes(backend: Backend, handle: SandboxHandle) -> SandboxProcess:
    """Talk to a spawned process and let it end; return another, left running."""
    talker = await backend.spawn(handle, TALKER, {"LG_SPAWN": "from-spawn"})
    assert await _line(talker) == b"from-spec from-spawn\n"
    assert await _say(talker, b"ping\n") == b"ping\n"
    assert talker.stdin is not None
    talker.stdin.close()
    assert await asyncio.wait_for(talker.wait(), PATIENCE) == 0
    lingering = await backend.spawn(handle, ["cat"])
    assert await _say(lingering, b"still here\n") == b"still here\n"
    return lingering


def _host_traces(handle: SandboxHandle) -> list[str]:
    """Folders and host processes the handle holds that still exist."""
    found = []
    for name, value in vars(handle).items():
        if isinstance(value, Path) and value.exists():
            found.append(f"{name}: {value}")
        if isinstance(value, subprocess.Popen) and value.poll() is None:
            found.append(f"{name}: pid {value.pid}")
    return found


async def _life(backend: Backend, tmp_path: Path) -> None:
    spec = SandboxSpec(name="contract", workdir=tmp_path / "work", env={"LG_SPEC": "from-spec"})
    handle = await backend.create(spec)
    try:
        await _commands(backend, handle)
        await _timeout(backend, handle)
        await _environment_and_work(backend, handle, spec.workdir)
        lingering = await _pipes(backend, handle)
    finally:
        await backend.destroy(handle)
    assert await asyncio.wait_for(lingering.wait(), PATIENCE) != 0  # killed, not ended
    assert _host_traces(handle) == []
    await backend.aclose()
    await backend.aclose()  # closing twice is harmless


def test_a_sandbox_lives_its_whole_life(backend: Backend, tmp_path: Path) -> None:
    asyncio.run(_life(backend, tmp_path))

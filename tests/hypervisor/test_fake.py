"""The fake backend itself: scripted outcomes, recorded calls, processes, its end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError, SandboxSpec
from luminaguard.hypervisor.fake import FakeBackend, FakeProcess, Outcome

SPEC = SandboxSpec(name="s", workdir=Path("/nonexistent"), env={"A": "1"})


async def forever(process: FakeProcess) -> int:
    await asyncio.Event().wait()
    return 0


def test_the_first_matching_rule_answers_as_often_as_scripted() -> None:
    async def go() -> list[int]:
        fake = FakeBackend()
        fake.on("x", Outcome(exit_code=1), times=2)
        fake.on(lambda command: command.startswith("x"), Outcome(exit_code=2))
        handle = await fake.create(SPEC)
        commands = ["x", "x", "x", "xy", "y"]
        return [(await fake.exec(handle, command, 1)).exit_code for command in commands]

    assert asyncio.run(go()) == [1, 1, 2, 2, 127]  # nothing scripted for y: as a shell


def test_errors_delays_and_timeouts_are_scripted() -> None:
    async def go(fake: FakeBackend) -> None:
        fake.on("boom", Outcome(error=BackendError("gone")))
        fake.on("slow", Outcome(delay=30))
        fake.on("quick", Outcome(delay=0.01, stdout="done\n"))
        handle = await fake.create(SPEC)
        with pytest.raises(BackendError, match="gone"):
            await fake.exec(handle, "boom", 1)
        late = await fake.exec(handle, "slow", 0.01)
        assert (late.timed_out, late.exit_code, late.duration) == (True, 137, 0.01)
        quick = await fake.exec(handle, "quick", 1)
        assert (quick.ok, quick.stdout) == (True, "done\n")

    fake = FakeBackend()
    asyncio.run(go(fake))
    assert [(c.method, c.command, c.timeout) for c in fake.calls[1:]] == [
        ("exec", "boom", 1),
        ("exec", "slow", 0.01),
        ("exec", "quick", 1),
    ]


def test_a_spawned_program_talks_over_pipes_and_ends() -> None:
    async def shout(process: FakeProcess) -> int:
        process.emit(process.env["A"].encode() + process.env["B"].encode() + b"\n")
        while line := await process.input.readline():
            process.emit(line.upper())
        return 5

    async def go() -> None:
        fake = FakeBackend()
        fake.on_spawn("shout --loud", shout)
        process = await fake.spawn(await fake.create(SPEC), ["shout", "--loud"], {"B": "2"})
        assert process.stdout is not None and process.stdin is not None
        assert await process.stdout.readline() == b"12\n"
        process.stdin.write(b"hi\n")
        await process.stdin.drain()
        assert await process.stdout.readline() == b"HI\n"
        process.stdin.close()
        assert await process.wait() == 5
        with pytest.raises(BrokenPipeError):
            await process.stdin.drain()

    asyncio.run(go())


def test_unscripted_failing_and_killed_processes() -> None:
    async def crash(process: FakeProcess) -> int:
        raise RuntimeError("bug")

    async def go() -> tuple[int, bytes, int, int]:
        fake = FakeBackend()
        fake.on_spawn("crash", crash)
        fake.on_spawn("forever", forever)
        fake.on_spawn("refused", BackendError("no processes here"))
        handle = await fake.create(SPEC)
        unknown = await fake.spawn(handle, ["unknown"])
        assert unknown.stderr is not None
        crashed = await fake.spawn(handle, ["crash"])
        killed = await fake.spawn(handle, ["forever"])
        killed.kill()
        with pytest.raises(BackendError, match="no processes here"):
            await fake.spawn(handle, ["refused"])
        return (
            await unknown.wait(),
            await unknown.stderr.read(),
            await crashed.wait(),
            await killed.wait(),
        )

    code, stderr, crashed, killed = asyncio.run(go())
    assert (code, crashed, killed) == (127, 1, -9)
    assert b"nothing scripted for ['unknown']" in stderr


def test_destroy_kills_processes_and_ends_the_sandbox() -> None:
    async def go() -> None:
        fake = FakeBackend()
        handle = await fake.create(SPEC)
        fake.on_spawn("wait", forever)
        process = await fake.spawn(handle, ["wait"])
        await fake.destroy(handle)
        assert process.returncode == -9 and fake.live == []
        for again in (fake.exec(handle, "x", 1), fake.destroy(handle), fake.spawn(handle, ["x"])):
            with pytest.raises(BackendError, match="was destroyed"):
                await again
        with pytest.raises(BackendError, match="not a sandbox of this fake"):
            await FakeBackend().exec(handle, "x", 1)

    asyncio.run(go())


def test_closing_refuses_new_sandboxes_and_kills_what_runs() -> None:
    async def go() -> None:
        async with FakeBackend() as fake:
            handle = await fake.create(SPEC)
            fake.on_spawn("wait", forever)
            process = await fake.spawn(handle, ["wait"])
        assert fake.closed and process.returncode == -9
        assert fake.live == [handle]  # never destroyed: a test can see the leak
        with pytest.raises(BackendError, match="closed"):
            await fake.create(SPEC)

    asyncio.run(go())


def test_it_counts_commands_running_at_once() -> None:
    async def go() -> int:
        fake = FakeBackend()
        fake.on("x", Outcome(delay=0.01))
        handle = await fake.create(SPEC)
        await asyncio.gather(*(fake.exec(handle, "x", 1) for _ in range(3)))
        await fake.exec(handle, "x", 1)
        assert fake.running == 0
        return fake.most_running

    assert asyncio.run(go()) == 3


def test_it_is_not_a_backend_users_can_choose() -> None:
    from luminaguard.hypervisor import registry

    assert "fake" not in registry.BACKENDS and "fake" not in registry.report()
    assert FakeBackend(usable=False).availability().usable is False

"""``FakeBackend``: a backend for tests. It runs nothing and records every call.

Commands get the outcomes a test scripts for them (``on``): an exit code and output,
a ``BackendError``, a delay (past the timeout it is a timed-out result, after the
timeout, as a real backend's), or a wait on something the test controls. Spawned
processes run a scripted coroutine (``on_spawn``) that reads what is written to their
stdin and emits their stdout; unscripted, a process ends at once with code 127.

It is deliberately absent from ``registry.BACKENDS``: that table is what users choose
with ``--backend`` and what ``luminaguard doctor`` reports, and a backend that runs
nothing must never be picked by accident. Tests construct it directly; the contract
test (``tests/hypervisor/test_contract.py``) drives it alongside every registered one.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from luminaguard.hypervisor.base import (
    AsyncClosing,
    Availability,
    BackendError,
    ExecResult,
    SandboxHandle,
    SandboxSpec,
)

#: A command's text (``shlex.join(argv)`` for a spawn) exactly, or a test on it.
Match = str | Callable[[str], bool]
#: What a spawned fake process does: reads ``process.input``, calls ``emit``, returns a code.
Program = Callable[["FakeProcess"], Awaitable[int]]
KILLED = -signal.SIGKILL  # as asyncio reports a killed child
NOT_FOUND = 127  # as a shell reports a command it cannot find
TIMED_OUT = 128 + signal.SIGKILL  # as the sandbox reports a command killed at its timeout

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One call the backend received, with its arguments."""

    method: str  # create, spawn, exec, destroy, aclose
    sandbox: str = ""  # the name in the spec of the sandbox it was for
    command: str = ""  # exec: the command; spawn: shlex.join(argv)
    env: Mapping[str, str] = field(default_factory=dict)  # spawn: the extra environment
    timeout: float | None = None  # exec
    spec: SandboxSpec | None = None  # create


@dataclass(frozen=True)
class Outcome:
    """How a scripted command ends: its result, or an error, after a delay or a wait."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    delay: float = 0.0
    error: BackendError | None = None
    until: Callable[[], Awaitable[object]] | None = None

    async def result(self, timeout: float) -> ExecResult:
        """Wait as scripted, then the result (timed out when the delay exceeds ``timeout``)."""
        if self.until is not None:
            await self.until()
        await asyncio.sleep(min(self.delay, timeout))
        if self.error is not None:
            raise self.error
        if self.delay > timeout:
            return ExecResult(TIMED_OUT, "", "", timeout, timed_out=True)
        return ExecResult(self.exit_code, self.stdout, self.stderr, self.delay)


@dataclass
class _Rule(Generic[T]):
    match: Match
    value: T
    times: int | None  # None: every time

    def take(self, text: str) -> bool:
        """Whether the rule answers ``text`` (using up one of its times if so)."""
        hit = self.match(text) if callable(self.match) else self.match == text
        if not hit or self.times == 0:
            return False
        if self.times is not None:
            self.times -= 1
        return True


class _Stdin:
    """A fake process's stdin: bytes written become its program's ``input``."""

    def __init__(self, process: FakeProcess) -> None:
        self.process = process
        self.closed = False

    def write(self, data: bytes) -> None:
        """Hand bytes to the program (dropped once the input is closed)."""
        if not self.closed:
            self.process.input.feed_data(data)

    async def drain(self) -> None:
        """Nothing queues; a process that has ended breaks the pipe, as a real one does."""
        if self.process.returncode is not None:
            raise BrokenPipeError("the fake process has ended")
        await asyncio.sleep(0)

    def close(self) -> None:
        """End the program's input."""
        if not self.closed:
            self.closed = True
            self.process.input.feed_eof()


class FakeProcess:
    """A spawned process that is a coroutine: no host process exists, so its pid is 0."""

    pid = 0

    def __init__(self, argv: list[str], env: dict[str, str], program: Program | None) -> None:
        self.argv, self.env = argv, env
        self.returncode: int | None = None
        self.input = asyncio.StreamReader()
        self.stdin = _Stdin(self)
        self.stdout = asyncio.StreamReader()
        self.stderr = asyncio.StreamReader()
        self._task = asyncio.get_running_loop().create_task(self._run(program))
        self._task.add_done_callback(self._end)

    def emit(self, data: bytes, stderr: bool = False) -> None:
        """Write to the process's stdout (or stderr), as its program."""
        (self.stderr if stderr else self.stdout).feed_data(data)

    async def _run(self, program: Program | None) -> int:
        if program is None:
            self.emit(f"fake backend: nothing scripted for {self.argv!r}\n".encode(), True)
            return NOT_FOUND
        return await program(self)

    def _end(self, task: asyncio.Task[int]) -> None:
        if self.returncode is not None:
            return
        if task.cancelled():
            self.returncode = KILLED
        elif (error := task.exception()) is not None:  # the program failed, as a crash
            self.emit(f"fake process: {error!r}\n".encode(), True)
            self.returncode = 1
        else:
            self.returncode = task.result()
        self.stdout.feed_eof()
        self.stderr.feed_eof()

    async def wait(self) -> int:
        """Wait for the program to end; its exit code."""
        await asyncio.wait({self._task})
        self._end(self._task)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        """Stop the program (its exit code is then -9)."""
        self._task.cancel()


@dataclass
class FakeSandbox:
    """A sandbox of the fake backend: its spec and the processes spawned in it."""

    spec: SandboxSpec
    processes: list[FakeProcess] = field(default_factory=list)
    destroyed: bool = False


class FakeBackend(AsyncClosing):
    """A ``Backend`` for tests; runs nothing. See the module's docstring."""

    name = "fake"

    def __init__(self, *, micro_vm: bool = False, usable: bool = True) -> None:
        self.micro_vm = micro_vm
        self.usable = usable
        self.calls: list[Call] = []
        self.sandboxes: list[FakeSandbox] = []
        self.create_error: BackendError | None = None  # raised by every create when set
        self.running = 0  # execs in progress now
        self.most_running = 0  # the most execs ever in progress at once
        self.closed = False
        self._commands: list[_Rule[Outcome]] = []
        self._programs: list[_Rule[Program | BackendError]] = []

    def on(self, match: Match, outcome: Outcome | None = None, times: int | None = None) -> None:
        """Answer commands that match with ``outcome`` (default: exit 0, no output).

        The first rule that matches answers; ``times`` limits how often it does.
        Commands no rule matches exit 127, as a shell's unknown command.
        """
        self._commands.append(_Rule(match, outcome or Outcome(), times))

    def on_spawn(
        self, match: Match, program: Program | BackendError, times: int | None = None
    ) -> None:
        """Run ``program`` for spawns whose ``shlex.join(argv)`` matches (or raise the error)."""
        self._programs.append(_Rule(match, program, times))

    @property
    def commands(self) -> list[str]:
        """Every command exec was asked to run, in order."""
        return [call.command for call in self.calls if call.method == "exec"]

    @property
    def live(self) -> list[FakeSandbox]:
        """The sandboxes created and not destroyed."""
        return [sandbox for sandbox in self.sandboxes if not sandbox.destroyed]

    def availability(self) -> Availability:
        """Usable unless constructed otherwise; it says what it is."""
        return Availability(self.usable, "a fake for tests: runs nothing")

    async def create(self, spec: SandboxSpec) -> FakeSandbox:
        """Record the spec; a sandbox object (or the scripted ``create_error``)."""
        self.calls.append(Call("create", spec.name, spec=spec))
        if self.closed:
            raise BackendError("the fake backend is closed")
        if self.create_error is not None:
            raise self.create_error
        sandbox = FakeSandbox(spec)
        self.sandboxes.append(sandbox)
        return sandbox

    def _live(self, handle: SandboxHandle) -> FakeSandbox:
        if not isinstance(handle, FakeSandbox) or handle not in self.sandboxes:
            raise BackendError("not a sandbox of this fake backend")
        if handle.destroyed:
            raise BackendError(f"sandbox {handle.spec.name!r} was destroyed")
        return handle

    async def spawn(
        self, handle: SandboxHandle, argv: list[str], env: dict[str, str] | None = None
    ) -> FakeProcess:
        """A fake process running the program scripted for ``argv``."""
        sandbox = self._live(handle)
        text = shlex.join(argv)
        self.calls.append(Call("spawn", sandbox.spec.name, text, dict(env or {})))
        program = next((r.value for r in self._programs if r.take(text)), None)
        if isinstance(program, BackendError):
            raise program
        process = FakeProcess(argv, {**sandbox.spec.env, **(env or {})}, program)
        sandbox.processes.append(process)
        return process

    async def exec(self, handle: SandboxHandle, command: str, timeout: float) -> ExecResult:
        """The outcome scripted for ``command``; counts how many run at once."""
        sandbox = self._live(handle)
        self.calls.append(Call("exec", sandbox.spec.name, command, timeout=timeout))
        outcome = next((r.value for r in self._commands if r.take(command)), None)
        if outcome is None:
            stderr = f"fake backend: no outcome scripted for {command!r}\n"
            return ExecResult(NOT_FOUND, "", stderr, 0.0)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            return await outcome.result(timeout)
        finally:
            self.running -= 1

    async def destroy(self, handle: SandboxHandle) -> None:
        """Kill the sandbox's processes; a second destroy of one sandbox is an error."""
        sandbox = self._live(handle)
        self.calls.append(Call("destroy", sandbox.spec.name))
        sandbox.destroyed = True
        await _stop(sandbox.processes)

    async def aclose(self) -> None:
        """Refuse new sandboxes; kill what still runs (sandboxes stay live: see ``live``)."""
        self.calls.append(Call("aclose"))
        self.closed = True
        for sandbox in self.sandboxes:
            await _stop(sandbox.processes)


async def _stop(processes: list[FakeProcess]) -> None:
    for process in processes:
        process.kill()
        await process.wait()

"""Waiting for a VM to come up: one deadline-polling loop, and what to say when it does not.

Every wait on a starting VM (its sockets appearing, its VMM's API or QMP answering, its
guest agent saying hello) is ``poll``: an attempt repeated until it succeeds, while the
VMM process still runs, until a deadline. A VMM that exited is a dead VM, explained from
its logs (``guest_died``); a VMM still running at the deadline is a ``BootTimeout``,
which a caller may retry (a loaded machine boots slowly, it does not boot wrongly).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from luminaguard.hostile_files import Unreadable, read_beneath
from luminaguard.hypervisor.base import BackendError
from luminaguard.hypervisor.vm.guest.client import GuestAgent, GuestError

LOG_TAIL = 64 << 10
T = TypeVar("T")


class BootTimeout(BackendError):
    """The VMM still ran, but what was waited for did not happen by the deadline."""


def _lines(path: Path) -> list[str]:
    """The last lines of a log the guest writes (its console): at most 64 KiB of them."""
    try:
        return (
            read_beneath(path.parent, path.name, LOG_TAIL, tail=True)
            .decode(errors="replace")
            .splitlines()
        )
    except Unreadable:
        return []


def guest_died(folder: Path) -> BackendError:
    """The error for a VM that stopped before its agent answered, quoting the VMM and guest.

    The VMM's own messages are in ``qemu.log`` or ``firecracker.log``; the guest's in
    ``console.log``.
    """
    console = _lines(folder / "console.log")
    telling = [line for line in console if re.search(r"panic|failed|error", line, re.I)]
    vmm = [line for name in ("qemu.log", "firecracker.log") for line in _lines(folder / name)]
    said = vmm + [line.split("] ", 1)[-1] for line in telling]
    why = "; ".join(said[:3]) or (
        "no message from the VMM or the guest (a reset this early usually means too little "
        "memory for the kernel and its root)"
    )
    return BackendError(
        f"the VM stopped before its guest agent answered: {why} (see {folder}/console.log)"
    )


async def poll(
    attempt: Callable[[], Awaitable[T | None]],
    deadline: float,
    what: str,
    vmm: subprocess.Popen[bytes],
    folder: Path,
    every: float = 0.005,
) -> T:
    """The first result of ``attempt()`` other than None, tried every ``every`` seconds.

    An attempt that cannot succeed yet returns None. Once ``vmm`` has exited, the error
    quotes the logs in ``folder`` (``guest_died``); past ``deadline`` with the VMM still
    running, it is a BootTimeout saying what did not happen (``what``).
    """
    while True:
        result = await attempt()
        if result is not None:
            return result
        if vmm.poll() is not None:
            raise guest_died(folder)
        if time.monotonic() > deadline:
            raise BootTimeout(f"{what} in time (see {folder}/console.log)")
        await asyncio.sleep(every)


#: What the host says first on a new connection to the guest agent, given how long it
#: may wait for the answer: ``hello`` by default; a restored clone's ``reseed``, so that
#: the one answer both proves the agent and reseeds it (the first request a restored
#: guest serves is the costly one under emulation: its code is translated anew).
Greeting = Callable[[GuestAgent, float], Awaitable[object]]
FIRST_WAIT = 0.5  # the first answer awaited this long; each one not given in time, twice as long


async def hello(agent: GuestAgent, wait: float) -> None:
    """The default greeting: the agent's ``hello``."""
    await agent.request("hello", wait=wait)


class Patience:
    """How long to wait for the agent's answer: doubled after each wait it outlasted.

    A guest on a loaded machine answers late, not wrongly; dropping its connection
    after a fixed wait throws away the work it had started and makes it start again.
    """

    def __init__(self, first: float = FIRST_WAIT) -> None:
        self.wait = first
        self.waits: list[float] = []  # each wait that was used up, in order

    def outlasted(self, waited: float) -> None:
        """An answer did not come within ``waited``: wait twice as long the next time."""
        if waited >= self.wait * 0.99:  # the event loop may wake a timer a tick early
            self.waits.append(self.wait)
            self.wait *= 2


async def _greeted(
    sock: Path, greet: Greeting, patience: Patience, deadline: float
) -> GuestAgent | None:
    """The agent's connection if it answers the greeting now (by ``deadline``), else None."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(sock))
    except OSError:  # absent, or refused: QEMU creates the file before it listens
        return None
    agent = GuestAgent(reader, writer)
    asked = time.monotonic()
    try:
        await greet(agent, max(min(patience.wait, deadline - asked), 0.01))
    except (GuestError, OSError):  # a guest still booting, or a connection QEMU dropped
        patience.outlasted(time.monotonic() - asked)
        await agent.aclose()
        return None
    return agent


async def connect(
    sock: Path,
    vmm: subprocess.Popen[bytes],
    deadline: float,
    greet: Greeting = hello,
    patience: Patience | None = None,
) -> GuestAgent:
    """The guest agent's connection on ``sock`` (virtio-serial), once it answers ``greet``.

    While the VMM runs, a connection can fail for reasons that pass: refused between
    QEMU creating the socket file and listening on it, unaccepted or dropped while the
    guest has not opened its port, unanswered while the guest boots (each unanswered
    try waits twice as long as the one before: ``Patience``). Each is retried until
    ``deadline``; only a VMM that has exited makes the VM dead.
    """
    waiting = patience or Patience()
    return await poll(
        lambda: _greeted(sock, greet, waiting, deadline),
        deadline,
        "the guest agent did not answer",
        vmm,
        sock.parent,
        0.01,
    )

"""A command's session: its run store and its backend, opened when asked for, closed at the end.

Every subcommand that keeps run state or runs agents works in one (``in_session``):
the store of ``--state`` and the backend the registry gives for a name are opened on
first use, so nothing is created before the command has checked its input. The end
of the session, however the command ends (Ctrl-C included), closes the backend first
(its warm pools, its zygote: no VM outlives the command) and then the store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable

from luminaguard.errors import UsageError
from luminaguard.scheduler.store import RunStore
from luminaguard.ui.state import open_store

TYPE_CHECKING = False  # mypy treats this name as true
if TYPE_CHECKING:
    from luminaguard.hypervisor.base import Backend


class Session:
    """One command's run store and backend, each opened on first use."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._store: RunStore | None = None
        self._backend: Backend | None = None

    @property
    def store(self) -> RunStore:
        """The run store of ``--state`` (and ``--audit-key``)."""
        if self._store is None:
            self._store = open_store(self.args)
        return self._store

    def backend(self, name: str) -> Backend:
        """The backend of this name from the registry: one per session."""
        if self._backend is None:
            from luminaguard.hypervisor.registry import backend  # every backend: when asked

            self._backend = backend(name)
        elif self._backend.name != name:
            raise UsageError(f"one backend per command: {self._backend.name} is open, not {name}")
        return self._backend

    async def aclose(self) -> None:
        """Close the backend, then the store (each only if it was opened)."""
        opened, self._backend = self._backend, None
        try:
            if opened is not None:
                await opened.aclose()
        finally:
            if self._store is not None:
                self._store.close()
                self._store = None


@contextlib.asynccontextmanager
async def session(args: argparse.Namespace) -> AsyncIterator[Session]:
    """A session for the command of ``args``, closed when the block ends."""
    opened = Session(args)
    try:
        yield opened
    finally:
        await opened.aclose()


Handler = Callable[[argparse.Namespace, Session], int | Awaitable[int]]


def in_session(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """A subcommand's handler run in a session (an event loop with it, for async handlers)."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        async def within() -> int:
            async with session(args) as opened:
                result = handler(args, opened)
                return result if isinstance(result, int) else await result

        return asyncio.run(within())

    return run

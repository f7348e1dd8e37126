"""One server per state folder: ``server.lock`` held while it serves, ``server.json`` says where.

The lock is an ``flock`` the kernel frees when the server dies (``kill -9`` included); a
second ``luminaguard serve`` on the same folder is refused, naming the first. Commands
read ``server.json`` (only while the lock is held) to tell the person that a server will
continue a run they decided about, instead of asking them to ``resume`` it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from luminaguard.errors import UsageError
from luminaguard.scheduler.private import private_file, write_atomically

LOCK = "server.lock"
INFO = "server.json"


class ServerClaim:
    """A claim to serve one state folder; ``release`` (or the process ending) gives it up."""

    def __init__(self, state: Path, url: str) -> None:
        self.state = state
        fd = os.open(private_file(state / LOCK), os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = serving(state)
            where = f" (PID {other['pid']}, {other['url']})" if other else ""
            raise UsageError(f"a server serves {state} already{where}") from None
        self._fd: int | None = fd
        text = json.dumps({"pid": os.getpid(), "url": url})
        write_atomically(state / INFO, text.encode())

    def release(self) -> None:
        """Stop claiming the folder."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                (self.state / INFO).unlink()
            os.close(self._fd)
            self._fd = None


def serving(state: Path) -> dict[str, str] | None:
    """The server serving ``state`` now (its pid and URL), or None."""
    try:
        fd = os.open(state / LOCK, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:  # held: a server is there
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((state / INFO).read_text())
            return {"pid": str(info.get("pid")), "url": str(info.get("url"))}
        return {"pid": "?", "url": "?"}
    finally:
        os.close(fd)
    return None

"""Each sandbox its own unprivileged uid, from a range the runner owns.

Sandboxes that shared ``nobody`` could read each other's ``/proc/PID/environ`` (an
agent's secrets), as could any host process running as ``nobody``. A sandbox's
user is instead taken from ``LUMINAGUARD_SANDBOX_UIDS`` (``BASE:COUNT``, default
``200000:65536``): uid and gid ``BASE + slot``. Numbers that name a user or a group,
or fall in a range of ``/etc/subuid``/``/etc/subgid``, are skipped.

A slot is held by an exclusive ``flock`` on ``UIDLOCKS/UID.lock`` (default
``/run/luminaguard/uids``) for as long as the sandbox lives, so concurrent runners
never share a uid; the kernel drops the lock when the runner dies, and the
sandbox's processes die with it. A uid is reused only after its last sandbox ended.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from luminaguard.hypervisor.base import BackendError

DEFAULT_RANGE = "200000:65536"


def _range() -> tuple[int, int]:
    text = os.environ.get("LUMINAGUARD_SANDBOX_UIDS", DEFAULT_RANGE)
    base, _, count = text.partition(":")
    try:
        first, size = int(base), int(count)
    except ValueError:
        raise BackendError(f"LUMINAGUARD_SANDBOX_UIDS={text!r}: expected BASE:COUNT") from None
    if first < 1000 or size < 1 or first + size > 0x7FFFFFFF:
        raise BackendError(
            f"LUMINAGUARD_SANDBOX_UIDS={text!r}: the range must lie within 1000..2147483646"
        )
    return first, size


def _locks() -> Path:
    return Path(os.environ.get("LUMINAGUARD_UID_LOCKS", "/run/luminaguard/uids"))


@functools.cache
def _subordinate_ranges() -> tuple[tuple[int, int], ...]:
    ranges = []
    for name in ("/etc/subuid", "/etc/subgid"):
        with contextlib.suppress(OSError):
            for line in Path(name).read_text().splitlines():
                fields = line.strip().split(":")
                if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                    ranges.append((int(fields[1]), int(fields[1]) + int(fields[2])))
    return tuple(ranges)


def _in_use_elsewhere(uid: int) -> bool:
    """Whether ``uid`` (or the same gid) names a real user or group, or a subordinate id."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
        except KeyError:
            continue
        return True
    return any(start <= uid < end for start, end in _subordinate_ranges())


@dataclass
class SandboxUser:
    """A uid held for one sandbox; ``release`` gives it back."""

    uid: int
    _lock: int | None

    @property
    def gid(self) -> int:
        """The sandbox's group: the same number as its uid."""
        return self.uid

    def release(self) -> None:
        """Let another sandbox take this uid (its processes must be gone)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _try(uid: int, folder: Path) -> SandboxUser | None:
    fd = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return SandboxUser(uid, fd)


def allocate() -> SandboxUser:
    """The lowest free uid of the range, held until ``release`` or this process's end."""
    first, size = _range()
    folder = _locks()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for uid in range(first, first + size):
            if _in_use_elsewhere(uid):
                continue
            held = _try(uid, folder)
            if held is not None:
                return held
    except OSError as exc:
        raise BackendError(f"cannot take a sandbox uid in {folder}: {exc}") from exc
    raise BackendError(f"every sandbox uid in {first}..{first + size - 1} is in use")


def hand_over(folder: Path, user: SandboxUser) -> None:
    """Make ``folder`` (and what is in it) the sandbox user's alone: owner, mode 0700.

    Files an earlier sandbox (another uid) left are given to this one, without
    following symbolic links; the folder itself is changed last, so an interrupted
    hand-over is redone next time.
    """
    try:
        if os.lstat(folder).st_uid != user.uid:
            _chown_below(str(folder), user.uid, user.gid)
            os.lchown(folder, user.uid, user.gid)
        os.chmod(folder, 0o700)
    except OSError as exc:  # a folder swapped for a link mid-walk (ELOOP), say
        raise BackendError(f"cannot give {folder} to the sandbox's user: {exc}") from exc


#: How each folder of a work folder is opened: never through a symbolic link.
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class _Level:
    """A folder of the walk: its identity (device, inode), its sub-folders not yet walked."""

    identity: tuple[int, int]
    folders: list[str]


def _chown_below(top: str, uid: int, gid: int) -> None:
    """Every entry below ``top``, links not followed, by descriptor: no path resolved twice.

    A process of the sandbox (one that outlived it, or a later sandbox of the folder) may
    swap a folder for a symlink to a host folder between its listing and its walk; a walk
    by paths would follow it and give host files away. Each folder is instead opened from
    its parent's descriptor with ``O_NOFOLLOW`` (a swapped one fails with ELOOP), each
    entry changed by name relative to it. Iterative, with one descriptor at a time (a
    hostile tree is deep): the walk climbs back by ``..``, checking where it arrived.
    """
    fd = os.open(top, _FOLDER)
    try:
        trail = [_listed(fd, uid, gid)]
        while trail:
            if trail[-1].folders:
                fd = _moved(fd, os.open(trail[-1].folders.pop(), _FOLDER, dir_fd=fd))
                trail.append(_listed(fd, uid, gid))
                continue
            trail.pop()
            if trail:
                fd = _moved(fd, os.open("..", _FOLDER, dir_fd=fd))
                if _identity(fd) != trail[-1].identity:
                    raise OSError(f"a folder of {top} was moved during the hand-over")
    finally:
        os.close(fd)


def _moved(old: int, new: int) -> int:
    os.close(old)
    return new


def _identity(fd: int) -> tuple[int, int]:
    found = os.fstat(fd)
    return found.st_dev, found.st_ino


def _listed(fd: int, uid: int, gid: int) -> _Level:
    """Give each entry of the folder open as ``fd`` to ``uid``; the folder and its sub-folders."""
    folders: list[str] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            os.chown(entry.name, uid, gid, dir_fd=fd, follow_symlinks=False)
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.name)
    return _Level(_identity(fd), folders)

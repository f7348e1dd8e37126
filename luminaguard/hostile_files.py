"""Reading, on the host, a file the guest can influence, without following its paths.

Everything under an agent's work folder or a mounted folder may have been planted by
code in a sandbox: a symbolic link to ``/etc/shadow``, a symlinked folder on the way,
a FIFO, a 1 GiB sparse file. ``read_beneath`` is the one way the host reads such a
file. The path is resolved beneath its root with ``openat2(2)`` and
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV``,
or, where the kernel has no ``openat2``, one component at a time with ``O_NOFOLLOW``
and the same checks. It is opened ``O_PATH`` first (opening a device or a FIFO can
have effects of its own), must be a regular file, and is read only when no larger
than the limit given.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path, PurePosixPath

from luminaguard.nofollow import open_no_links

RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 1, 2, 4, 8
RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}
_PATH_FLAGS = os.O_PATH | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_REFUSALS = {
    errno.ELOOP: "a symbolic link is on the way",
    errno.EXDEV: "the path leaves its folder",
    errno.ENOTDIR: "a part of the path is not a folder",
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class Unreadable(Exception):
    """A guest file the host will not read; the message says why."""


class Missing(Unreadable):
    """Nothing is at the path (a file about to be created)."""


class TooLarge(Unreadable):
    """The file is larger than the limit; it was not read."""

    def __init__(self, size: int) -> None:
        super().__init__(f"too large to show: {size} bytes")
        self.size = size


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    """The openat2 system call; OSError(ENOSYS) where this kernel or machine lacks it."""
    number = SYS_OPENAT2.get(os.uname().machine)
    if number is None:
        raise OSError(errno.ENOSYS, "openat2 is not known on this machine")
    how = _OpenHow(flags, 0, resolve)
    fd = _libc.syscall(
        ctypes.c_long(number),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return int(fd)


def _refusal(status: os.stat_result, device: int, last: bool) -> str | None:
    """Why a component found by the walk may not be used, or None."""
    if stat.S_ISLNK(status.st_mode):
        return _REFUSALS[errno.ELOOP]
    if status.st_dev != device:
        return "the path crosses into another file system"
    if not last and not stat.S_ISDIR(status.st_mode):
        return _REFUSALS[errno.ENOTDIR]
    return None


def _walk(rootfd: int, parts: tuple[str, ...]) -> int:
    """An O_PATH descriptor of ``parts`` beneath ``rootfd``, opened one name at a time."""
    device = os.fstat(rootfd).st_dev
    fd = os.dup(rootfd)
    try:
        for index, name in enumerate(parts):
            following = os.open(name, _PATH_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = following
            refused = _refusal(os.fstat(fd), device, index == len(parts) - 1)
            if refused:
                raise Unreadable(refused)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_path(rootfd: int, parts: tuple[str, ...]) -> int:
    """An O_PATH descriptor of the file, by openat2 or, without it, by the walk."""
    try:
        return _openat2(rootfd, "/".join(parts), _PATH_FLAGS, RESOLVE)
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
    return _walk(rootfd, parts)


def _parts(path: str | PurePosixPath) -> tuple[str, ...]:
    text = str(path)
    if "\0" in text:
        raise Unreadable("the path holds a NUL character")
    try:  # a lone surrogate (JSON's "\ud800") names no file: never an uncaught error
        os.fsencode(text)
    except UnicodeEncodeError as exc:
        raise Unreadable("the path is not text a file name can hold") from exc
    relative = PurePosixPath(text)
    if relative.is_absolute() or ".." in relative.parts:
        raise Unreadable("the path leaves its folder")
    if not relative.parts:
        raise Unreadable("the path names the folder itself")
    return relative.parts


def _read(fd: int, limit: int, tail: bool) -> bytes:
    """A regular file's bytes: all of them, the last ``limit`` with ``tail``, or TooLarge."""
    size = os.fstat(fd).st_size
    if size > limit:
        if not tail:
            raise TooLarge(size)
        os.lseek(fd, size - limit, os.SEEK_SET)
    chunks: list[bytes] = []
    total = 0
    while total <= limit:  # one byte past the limit tells a file that grew meanwhile
        chunk = os.read(fd, min(1 << 16, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    if tail:
        return b"".join(chunks)[-limit:]
    raise TooLarge(max(total, os.fstat(fd).st_size))


def _reopen(pathfd: int) -> int:
    """A readable descriptor of the regular file ``pathfd`` refers to (the same inode)."""
    before = os.fstat(pathfd)
    if not stat.S_ISREG(before.st_mode):
        raise Unreadable("not a regular file")
    try:
        fd = os.open(f"/proc/self/fd/{pathfd}", _READ_FLAGS)
    except OSError as exc:  # not Missing: the file is there, /proc may not be
        raise Unreadable(f"cannot reopen it through /proc/self/fd: {exc.strerror}") from exc
    after = os.fstat(fd)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise Unreadable("the file changed while it was opened")
    return fd


def _failure(exc: OSError) -> Unreadable:
    if exc.errno == errno.ENOENT:
        return Missing("no such file")
    return Unreadable(_REFUSALS.get(exc.errno or 0) or exc.strerror or str(exc))


def open_folder(path: Path) -> int:
    """An O_PATH descriptor of the absolute folder ``path``, never through a link.

    For a root that may lie below a folder a sandbox writes (a mount's source): a step
    can replace a folder there with a link to anywhere on the host.
    """
    fd = open_no_links(str(path))
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    return fd


def read_beneath(
    root: Path,
    path: str | PurePosixPath,
    limit: int,
    *,
    tail: bool = False,
    root_links: bool = True,
) -> bytes:
    """The content of the regular file at ``path`` (relative) beneath the folder ``root``.

    ``root`` is the host's own (a work folder, a log's folder) and is followed as it
    is, unless ``root_links`` is false (a mount's source: see ``open_folder``); nothing
    beneath it is. Raises ``Missing`` when there is nothing at ``path``,
    ``TooLarge`` when the file holds more than ``limit`` bytes (with ``tail``, a log's
    last ``limit`` bytes are returned instead), and ``Unreadable`` when the path is not
    a plain way down to a regular file (a symbolic link on the way, a FIFO, a device,
    another file system) or the file cannot be read.
    """
    parts = _parts(path)
    opened: list[int] = []
    try:
        opened.append(
            os.open(root, _PATH_FLAGS | os.O_DIRECTORY) if root_links else open_folder(root)
        )
        opened.append(_open_path(opened[0], parts))
        opened.append(_reopen(opened[1]))
        return _read(opened[2], limit, tail)
    except OSError as exc:
        raise _failure(exc) from exc
    finally:
        for fd in opened:
            os.close(fd)

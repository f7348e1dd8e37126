"""Opening a host path that may pass below a folder a sandbox writes, never through a link.

A mount's source may lie below another mount a sandbox writes, where a step can replace
a folder with a link to anywhere on the host. Such a path is opened ``O_PATH`` from
``/``, one component at a time, each ``O_NOFOLLOW``: a link anywhere on the way is
refused, and the descriptor names what was checked (no later lookup by path can be
redirected). Standard library only (the sandbox zygote in Python imports it before the pivot).
"""

from __future__ import annotations

import errno
import os
import stat


def open_no_links(path: str) -> int:
    """An ``O_PATH`` descriptor of the absolute ``path``, reached through no link.

    Raises OSError: ELOOP when a part of it is a symbolic link, EINVAL when the path is
    not absolute or has a ``..`` in it, or what ``open`` says (ENOENT...).
    """
    parts = path.split("/")
    if not path.startswith("/") or ".." in parts:
        raise OSError(errno.EINVAL, f"not an absolute path without '..': {path}")
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            if part in ("", "."):
                continue
            following = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = following
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.ELOOP, f"a symbolic link is on the way: {path}")
    except BaseException:
        os.close(fd)
        raise
    return fd

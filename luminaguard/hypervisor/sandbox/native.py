"""The sandbox zygote compiled from ``zygote.c``: found where it was built, or built once.

The compiled zygote does what ``helper.py``'s does at a fraction of the CPU per sandbox
(no interpreter to copy at each clone). It is built by ``make`` into ``build/`` next to
this file (``python -m luminaguard.hypervisor.sandbox.native``), or else on first use
into the cache (``$LUMINAGUARD_CACHE/zygote``, default ``~/.cache/luminaguard``), named
by a hash of its source and flags, so a changed source is never run from an old build.
Without a C compiler, or with ``LUMINAGUARD_SANDBOX_ZYGOTE=python``, the Python zygote
serves instead: the same sandbox, slower to spawn.

A binary is run only from a folder that this user (or root) owns and nobody else may
write, as is the binary itself and every folder above (but sticky ones like ``/tmp``),
by a path with no link in it: the zygote runs with the runner's privileges.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("zygote.c")
BUILT = Path(__file__).with_name("build")
FLAGS = (
    *("-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror"),
    *("-D_FORTIFY_SOURCE=2", "-fstack-protector-strong", "-fPIE", "-pie"),
    "-Wl,-z,relro,-z,now",
)
CHOICE = "LUMINAGUARD_SANDBOX_ZYGOTE"  # "python": never the compiled zygote


class BuildError(Exception):
    """The compiled zygote could not be built."""


def _cache() -> Path:
    base = os.environ.get("LUMINAGUARD_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "luminaguard") / "zygote"


def name() -> str:
    """The binary's file name: a hash of the source and the flags it is compiled with."""
    digest = hashlib.sha256(SOURCE.read_bytes() + "\0".join(FLAGS).encode())
    return f"luminaguard-zygote-{digest.hexdigest()[:16]}"


def _trusted(path: Path) -> bool:
    """Whether ``path`` (link-free) is ours (or root's) to run, up to ``/``.

    The binary and its folder belong to us or root and only the owner writes them, and
    so does every folder above, unless sticky (``/tmp``: nobody else renames what we own
    there). Whoever may write a folder above could rename ours away and put their own
    binary at the same path, which the next zygote start runs with our privileges.
    """
    for entry in (path, *path.parents):
        try:
            info = entry.lstat()
        except OSError:
            return False
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
        if stat.S_ISLNK(info.st_mode) or info.st_uid not in (0, os.getuid()):
            return False
        if writable and (entry in (path, path.parent) or not sticky):
            return False
    return True


def build(folder: Path, mode: int = 0o700) -> Path:
    """Compile the zygote into ``folder`` (made with ``mode`` if new); its path.

    Compiled into a temporary file renamed into place: a concurrent build or a
    crash never leaves a half-written binary under the final name.
    """
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise BuildError("no C compiler (cc) found")
    folder.mkdir(mode=mode, parents=True, exist_ok=True)
    target = folder / name()
    fd, temporary = tempfile.mkstemp(prefix=".zygote-", dir=folder)
    os.close(fd)
    try:
        done = subprocess.run(
            [compiler, *FLAGS, "-o", temporary, str(SOURCE)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise BuildError(f"cc exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        os.chmod(temporary, 0o755)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


@functools.cache
def program() -> Path | None:
    """The compiled zygote to run: built beside the source, or in the cache; None if none.

    None (the Python zygote serves) when asked for, on another system than Linux, or
    when no compiler is there to build it.
    """
    if os.environ.get(CHOICE) == "python" or sys.platform != "linux":
        return None
    for folder in (BUILT, _cache()):
        candidate = folder.resolve() / name()  # run by a path with no link in it
        if candidate.is_file() and _trusted(candidate):
            return candidate
    try:
        built = build(_cache()).resolve()
    except (BuildError, OSError, subprocess.SubprocessError):
        return None
    return built if _trusted(built) else None


def main() -> int:
    """``python -m luminaguard.hypervisor.sandbox.native``: build it beside the source."""
    if (BUILT / name()).is_file():
        print(BUILT / name())
        return 0
    try:
        print(build(BUILT, 0o755))  # readable like the package: an unprivileged runner uses it
    except (BuildError, OSError, subprocess.SubprocessError) as exc:
        print(f"the compiled sandbox zygote was not built ({exc}); the Python one will serve")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

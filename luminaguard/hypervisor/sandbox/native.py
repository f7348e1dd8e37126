"""The sandbox zygote compiled from ``zygote.c``: found where it was built, or built once.

The compiled zygote does what ``helper.py``'s does at a fraction of the CPU per sandbox
(no interpreter to copy at each clone). ``make zygote`` (which ``make demo``, ``make
test`` and ``make bench`` run) builds it into ``build/`` next to this file (``python -m
luminaguard.hypervisor.sandbox.native``), or else it is built on first use into the
cache (``$LUMINAGUARD_CACHE/zygote``, default ``~/.cache/luminaguard``), named by a hash
of its source and flags, so a changed source is never run from an old build. It needs
Linux 5.12 (``mount_setattr``). Without it, without a C compiler, or with
``LUMINAGUARD_SANDBOX_ZYGOTE=python``, the Python zygote serves instead: the same
sandbox, slower to spawn; ``reason()`` says why (``doctor`` prints it).

A binary is run only from a folder that this user (or root) owns and nobody else may
write, as is the binary itself and every folder above (but sticky ones like ``/tmp``),
by a path with no link in it: the zygote runs with the runner's privileges.
"""

from __future__ import annotations

import ctypes
import errno
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
#: Warnings are not errors here (a newer compiler's new warning must not take the compiled
#: zygote away); ``tests/hypervisor/test_compiled_zygote.py`` compiles with -Werror.
FLAGS = (
    *("-O2", "-std=gnu11", "-Wall", "-Wextra", "-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=2"),
    *("-fstack-protector-strong", "-fPIE", "-pie", "-Wl,-z,relro,-z,now"),
)
SYS_MOUNT_SETATTR = 442  # the same on every architecture (a call newer than the split)
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
    for old in folder.glob("luminaguard-zygote-*"):  # builds of earlier sources
        if old != target:
            old.unlink(missing_ok=True)
    return target


def program() -> Path | None:
    """The compiled zygote to run, or None: then the Python zygote serves (see ``reason``)."""
    return _located()[0]


def forget() -> None:
    """Look again on the next call (after a compiler was installed, say; tests)."""
    _located.cache_clear()


def reason() -> str:
    """Which zygote serves, and why not the compiled one when it does not."""
    found, why = _located()
    return f"zygote {found.name}" if found else f"the Python zygote ({why})"


@functools.cache
def _located() -> tuple[Path | None, str]:
    """The compiled zygote, built beside the source or in the cache; else why none."""
    if os.environ.get(CHOICE) == "python":
        return None, f"{CHOICE}=python"
    if sys.platform != "linux" or not _kernel_has_mount_setattr():
        return None, "the compiled one needs Linux 5.12 or later (mount_setattr)"
    for folder in (BUILT, _cache()):
        candidate = folder.resolve() / name()  # run by a path with no link in it
        if candidate.is_file() and _trusted(candidate):
            return candidate, ""
    cache = _private_folder(_cache())
    if cache is None or not _trusted(cache):
        return None, f"the cache {_cache()} is not private to this user"
    try:
        built = build(cache)
    except (BuildError, OSError, subprocess.SubprocessError) as exc:
        return None, f"not built: {exc}"
    return built, ""


def _kernel_has_mount_setattr() -> bool:
    """Whether the kernel knows mount_setattr (EBADF for a bad descriptor; else ENOSYS)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall(SYS_MOUNT_SETATTR, -1, b"", 0, None, 0)
    return ctypes.get_errno() != errno.ENOSYS


def _private_folder(folder: Path) -> Path | None:
    """``folder`` resolved, each level made here mode 0700 (whatever the umask).

    None if it cannot be made.
    """
    missing = [level for level in (folder, *folder.parents) if not level.exists()]
    try:
        for level in reversed(missing):
            level.mkdir(mode=0o700)
            level.chmod(0o700)
        return folder.resolve()
    except OSError:
        return None


def main() -> int:
    """``python -m luminaguard.hypervisor.sandbox.native``: build it beside the source."""
    try:
        built = BUILT / name()
        if not built.is_file():
            built = build(BUILT, 0o755)  # readable like the package: unprivileged runners too
    except (BuildError, OSError, subprocess.SubprocessError) as exc:
        print(f"the compiled sandbox zygote was not built ({exc}); the Python one will serve")
        return 1
    if not _trusted(built.resolve()):
        print(f"{built} is built, but in a folder others may write: it will not be run")
        return 1
    print(built)
    return 0


if __name__ == "__main__":
    sys.exit(main())

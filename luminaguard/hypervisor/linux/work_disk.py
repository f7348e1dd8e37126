"""``/work``'s size limit: the work folder is a file system of its own, ``disk_mib`` large.

The agent's work folder (``.../agents/NAME/work``) gets a disk image beside it
(``work.disk``: a sparse file holding an ext4 file system, made with ``mkfs.ext4 -d``
from what the folder already held), loop-mounted on the folder itself, ``nosuid``
and ``nodev``. The path stays the same, so later steps, later sandboxes of the
run and host-side readers (cards, copies) all see the results; a write past the
limit fails inside the sandbox with ENOSPC and the host's disk holds no more
than the image's size.

Why a loop-mounted ext4 image: a size-limited tmpfs would lose the results
between sandboxes and cost memory; project quotas need a file system mounted
with them. Mounting needs root: without it (the user-namespace sandbox) there is
no size limit on ``/work``, which the backend's availability says, and each file
is bounded by ``disk_mib`` through RLIMIT_FSIZE instead.

The disk stays mounted when its sandbox ends (the results stay readable at the
same path); the next sandbox of the work folder finds it mounted, or mounts it
again after a reboot. ``detach`` unmounts it, leaving the image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from luminaguard import space
from luminaguard.hypervisor.base import BackendError
from luminaguard.space import DiskFull

MOUNT_OPTIONS = "loop,nosuid,nodev"


def image_of(workdir: Path) -> Path:
    """Where the work folder's disk image lives: beside it, under the state folder."""
    return workdir.parent / f"{workdir.name}.disk"


def available() -> str | None:
    """Why a size-limited ``/work`` cannot be made here, or None when it can."""
    if os.getuid() != 0:
        return "needs root (a loop mount)"
    missing = [tool for tool in ("mkfs.ext4", "mount", "umount") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    return None


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"{what}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackendError(f"{what}: {detail[-1] if detail else f'exit {done.returncode}'}")


def _make(image: Path, workdir: Path, size_mib: int) -> None:
    partial = image.with_name(image.name + ".new")
    with space.reported(image.parent, "the work disk's folder"), open(partial, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.truncate(size_mib << 20)
    # no journal: no journal thread per mounted disk, and a scratch folder needs none
    command = ["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "work", "-O", "^has_journal"]
    command += ["-E", "lazy_itable_init=1"]
    if any(workdir.iterdir()):
        command += ["-d", str(workdir)]  # what the folder held moves onto its disk
    try:
        _run([*command, str(partial)], f"cannot make the work disk {image}")
    except BackendError as exc:
        partial.unlink(missing_ok=True)
        if "No space left" in str(exc):  # the host's disk, not the agent: resume after
            raise DiskFull(space.describe(image.parent, "the work disk's folder")) from exc
        raise
    os.replace(partial, image)
    for entry in workdir.iterdir():  # now on the disk: the hidden copies would go stale
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def attach(workdir: Path, size_mib: int) -> None:
    """Mount the work folder's disk on it, made on first use; nothing when mounted already."""
    if os.path.ismount(workdir):
        return
    image = image_of(workdir)
    if not image.exists():
        _make(image, workdir, size_mib)
    _run(
        ["mount", "-t", "ext4", "-o", MOUNT_OPTIONS, str(image), str(workdir)],
        f"cannot mount the work disk {image}",
    )
    lost = workdir / "lost+found"
    if lost.is_dir() and not lost.is_symlink() and not any(lost.iterdir()):
        lost.rmdir()


def mounted_under(root: Path) -> list[Path]:
    """The work disks mounted at or below ``root`` (to detach them), deepest first."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = Path(line.split()[4].encode().decode("unicode_escape"))
            below = point == root or root in point.parents
            if below and (image_of(point).is_file() or point.name == "work"):  # image removed
                found.append(point)
    return sorted(found, key=lambda p: -len(p.parts))


def provide(workdir: Path, size_mib: int) -> None:
    """``attach``, refusing clearly where it cannot be done (root is assumed)."""
    problem = available()
    if problem:
        raise BackendError(f"/work cannot be limited to {size_mib} MiB: {problem}")
    attach(workdir, size_mib)


def detach(workdir: Path) -> None:
    """Unmount the work folder's disk (its image stays); nothing when it is not mounted."""
    if os.path.ismount(workdir):
        _run(["umount", str(workdir)], f"cannot unmount the work disk of {workdir}")


def detach_all(root: Path) -> None:
    """Unmount every work disk at or below ``root`` (before the folder is removed)."""
    for workdir in mounted_under(root.resolve()):
        detach(workdir)


if __name__ == "__main__":  # python -m luminaguard.hypervisor.linux.work_disk FOLDER...
    import sys

    for folder in sys.argv[1:]:
        detach_all(Path(folder))

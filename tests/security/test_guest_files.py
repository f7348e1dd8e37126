"""``read_beneath``: the host reads a guest file without following any path the guest made.

Each case runs twice: with ``openat2`` and with the component-by-component walk used
where the kernel lacks it (ENOSYS). Fixed by 849ea14 "guest files: read beneath a root
without following symlinks, regular files of bounded size only (openat2)" and, for a
dead VM's console, 36a6fde "microvm: a dead VM's console and VMM logs are read by their
last 64 KiB, through read_beneath".
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from luminaguard import hostile_files as guest_files
from luminaguard.hostile_files import Missing, TooLarge, Unreadable, read_beneath

SECRET = "secret-marker-5f1d"


def _no_openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    raise OSError(errno.ENOSYS, "not here")


@pytest.fixture(params=["openat2", "walk"], autouse=True)
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "walk":
        monkeypatch.setattr(guest_files, "_openat2", _no_openat2)
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_text(SECRET)
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "notes.txt").write_text("hello\n")
    (work / "sub" / "deep.txt").write_text("deep\n")
    return work


def test_reads_a_regular_file(root: Path) -> None:
    assert read_beneath(root, "notes.txt", 100) == b"hello\n"
    assert read_beneath(root, "sub/./deep.txt", 100) == b"deep\n"


def test_a_missing_file_is_missing(root: Path) -> None:
    with pytest.raises(Missing):
        read_beneath(root, "new.txt", 100)
    with pytest.raises(Missing):
        read_beneath(root, "nowhere/new.txt", 100)
    with pytest.raises(Missing):
        read_beneath(root.parent / "absent", "x", 100)


def test_a_symlinked_file_is_not_followed(root: Path) -> None:
    """Attack: /work/notes.txt -> a host secret; the host must not read the target.

    Fixed by 849ea14.
    """
    (root / "link.txt").symlink_to(root.parent / "secret.txt")
    (root / "relative.txt").symlink_to("notes.txt")  # even one that stays inside
    for name in ("link.txt", "relative.txt"):
        with pytest.raises(Unreadable, match="symbolic link") as caught:
            read_beneath(root, name, 100)
        assert not isinstance(caught.value, Missing)


def test_a_symlinked_folder_on_the_way_is_not_followed(root: Path) -> None:
    """Attack: /work/d -> a host folder; /work/d/secret.txt must not be read.

    Fixed by 849ea14.
    """
    (root / "d").symlink_to(root.parent)
    with pytest.raises(Unreadable, match="symbolic link"):
        read_beneath(root, "d/secret.txt", 100)


def test_paths_that_leave_the_root_are_refused(root: Path) -> None:
    for path in ("../secret.txt", "sub/../../secret.txt", "/etc/passwd", "", ".", "a\0b"):
        with pytest.raises(Unreadable) as caught:
            read_beneath(root, path, 100)
        assert not isinstance(caught.value, Missing)


def test_a_file_on_the_way_is_not_a_folder(root: Path) -> None:
    with pytest.raises(Unreadable, match="not a folder"):
        read_beneath(root, "notes.txt/x", 100)


def test_only_regular_files_are_read(root: Path) -> None:
    """Attack: a FIFO in /work would block a reader forever; it is refused at once.

    Fixed by 849ea14.
    """
    os.mkfifo(root / "pipe")
    started = time.monotonic()
    for name in ("pipe", "sub"):
        with pytest.raises(Unreadable, match="not a regular file"):
            read_beneath(root, name, 100)
    assert time.monotonic() - started < 5


def test_a_large_file_is_not_read(root: Path) -> None:
    """Attack: a sparse file far larger than the limit; only its size is looked at.

    Fixed by 849ea14.
    """
    with (root / "big").open("wb") as big:
        big.truncate(1 << 30)
    with pytest.raises(TooLarge) as caught:
        read_beneath(root, "big", 1000)
    assert caught.value.size == 1 << 30
    assert str(caught.value) == f"too large to show: {1 << 30} bytes"
    assert read_beneath(root, "notes.txt", 6) == b"hello\n"
    with pytest.raises(TooLarge):
        read_beneath(root, "notes.txt", 5)


def test_another_file_system_is_not_entered(root: Path) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    with pytest.raises(Unreadable):
        read_beneath(Path("/"), "proc/self/status", 10000)


def test_a_log_is_read_by_its_tail(root: Path) -> None:
    (root / "log").write_bytes(b"".join(b"line %d\n" % n for n in range(100_000)))
    tail = read_beneath(root, "log", 20, tail=True)
    assert tail == b"\nline 99998\nline 99999\n"[-20:]
    assert read_beneath(root, "notes.txt", 100, tail=True) == b"hello\n"


def test_a_dead_vms_console_is_read_by_its_tail(tmp_path: Path) -> None:
    """Attack: a guest fills its console log (1 GiB, sparse here) before its agent answers;
    the host quotes its last lines, without reading it all or following a link there.

    Fixed by 36a6fde.
    """
    from luminaguard.hypervisor.vm.waiting import guest_died

    with (tmp_path / "console.log").open("wb") as console:
        console.truncate(1 << 30)
        console.seek(0, os.SEEK_END)
        console.write(b"\n[    1.0] init: mount /work failed\n")
    (tmp_path / "qemu.log").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_text("host-secret-91aa\n")
    message = str(guest_died(tmp_path))
    assert "init: mount /work failed" in message
    assert "host-secret-91aa" not in message


def test_without_proc_the_file_is_unreadable_not_missing(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_proc(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if str(path).startswith("/proc/self/fd/"):
            raise FileNotFoundError(2, "No such file or directory")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(guest_files.os, "open", no_proc)
    with pytest.raises(Unreadable, match="/proc/self/fd") as caught:
        read_beneath(root, "notes.txt", 100)
    assert not isinstance(caught.value, Missing)

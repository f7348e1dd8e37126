"""Attack round 21: the sandbox zygote rewritten in C (``zygote.c``, ``native``, ``zygote``).

Each test performs one attack that got through and asserts that it no longer does:

1. a command too long for one request (over the socket's ~208 KiB send buffer) leaks the
   host's four pipe ends on every attempt: an agent repeating it exhausts the runner's
   descriptors, and with them every agent's sandboxes;
2. the compiled zygote runs as the runner (root) from the cache; only the binary and its
   folder were checked, so whoever may write a folder above (a shared ``LUMINAGUARD_CACHE``
   such as ``/srv/shared/lg``, a link on the way) renames the checked folder away and puts
   a binary of their own in its place, which the next zygote start runs as root;
3. the compiled zygote built a ``PATH`` candidate in a 4096-byte buffer, cut short without
   a word: a long ``PATH`` folder ran ``FOLDER/s`` for ``sh`` (the Python zygote refuses
   it: ENAMETOOLONG);
4. a spawn cancelled once the zygote had written ``pid N`` but before the host read it
   (the event loop busy a moment) closed the status pipe and left the sandbox running,
   watched by nobody and killed by nothing (without cgroups: until the zygote stops);
5. the Python zygote (the fallback where no compiler is) checked a mount target for links,
   then made it and mounted on it by path: another sandbox of the agent looping renames
   in ``/work`` had it make a folder (with a file source: a file) anywhere on the host.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.linux.system import NOBODY
from luminaguard.hypervisor.sandbox import native
from luminaguard.hypervisor.sandbox.zygote import Zygote
from tests.conftest import ROOT
from tests.integration.conftest import sandbox_problem
from tests.security.conftest import Looping


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_request_too_long_to_send_leaks_no_descriptor(tmp_path: Path) -> None:
    """``Zygote.spawn`` made four pipes, sent their far ends and closed those; when the
    send failed (EMSGSIZE: a 300 KB command) the near ends stayed open, four per try."""

    async def go() -> int:
        zygote = Zygote()
        try:
            request = [f"workdir={tmp_path}", f"root={tmp_path}", "--", "sh", "-c"]
            with pytest.raises(OSError):  # started: the zygote's socket is open from here
                await zygote.spawn([*request, "x" * 300_000])
            before = _descriptors()
            for _ in range(3):
                with pytest.raises(OSError):
                    await zygote.spawn([*request, "x" * 300_000])
            return _descriptors() - before
        finally:
            zygote.close()

    assert asyncio.run(go()) == 0


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache below a folder that everyone may write (no sticky bit), nothing beside the
    source: ``program`` must build, and then judge where it built."""
    if native.shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler (cc)")
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    monkeypatch.setenv("LUMINAGUARD_CACHE", str(folder / "lg"))
    monkeypatch.setattr(native, "BUILT", tmp_path / "none")
    monkeypatch.delenv(native.CHOICE, raising=False)
    native.forget()
    yield folder
    native.forget()


def test_a_binary_below_a_folder_others_may_write_is_not_run(shared: Path) -> None:
    """The binary and its folder are ours, but ``shared`` above them is anyone's: anyone
    renames ``lg`` away and makes their own ``lg/zygote/<name>``, run by the next start."""
    found = native.program()
    if found is not None:  # the attack: swap the folder after the check, before the run
        planted = shared / "lg" / "zygote"
        (shared / "lg").rename(shared / "checked")
        planted.mkdir(parents=True)
        (planted / found.name).write_text("#!/bin/sh\necho planted\n")
        (planted / found.name).chmod(0o755)
        assert found.read_text(errors="replace").startswith("#!/bin/sh\necho planted")
    assert found is None  # the Python zygote serves instead


def test_a_binary_is_run_by_a_path_with_no_link_of_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link on the way to the cache, owned by another user: repointed after the check."""
    if native.shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler (cc)")
    if os.getuid() != 0:
        pytest.skip("making a link owned by another user needs root")
    real = tmp_path / "real"
    real.mkdir()
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)  # like /tmp: others' links may sit beside ours
    link = sticky / "cache"
    link.symlink_to(real)
    os.lchown(link, NOBODY, NOBODY)
    monkeypatch.setenv("LUMINAGUARD_CACHE", str(link))
    monkeypatch.setattr(native, "BUILT", tmp_path / "none")
    monkeypatch.delenv(native.CHOICE, raising=False)
    native.forget()
    try:
        found = native.program()
    finally:
        native.forget()
    assert found is not None, native.reason()  # built, through the link's target itself
    assert found == found.resolve() and not str(found).startswith(str(link))


@pytest.mark.integration
def test_a_long_path_folder_is_never_cut_into_another_program(tmp_path: Path) -> None:
    """``FOLDER/sh`` over 4095 bytes was cut to ``FOLDER/s``, and that ran."""
    if sandbox_problem():
        pytest.skip(sandbox_problem() or "")
    if native.program() is None:
        pytest.skip("no compiled zygote here")
    work = tmp_path / "work"
    work.mkdir()
    inside = "/work"  # FOLDER as the sandbox sees it: /work/ddd.../ddd
    while len(inside) < 3850:
        inside += "/" + "d" * 200
    inside += "/" + "d" * (4095 - len(inside) - len("//s"))  # FOLDER/s: 4095 bytes
    at = os.open(work, os.O_DIRECTORY)
    for part in inside.split("/")[2:]:  # too long a path for the host: folder by folder
        os.mkdir(part, dir_fd=at)
        at, above = os.open(part, os.O_DIRECTORY, dir_fd=at), at
        os.close(above)
    program = os.open("s", os.O_WRONLY | os.O_CREAT, 0o755, dir_fd=at)
    os.write(program, b"#!/bin/sh\necho cut short\n")
    os.close(program)
    os.close(at)
    os.chmod(tmp_path, 0o755)
    root = tmp_path / "root"
    root.mkdir()

    async def go() -> tuple[bytes, bytes]:
        zygote = Zygote()
        try:
            process = await zygote.spawn(
                [
                    f"workdir={work}", f"root={root}", "cpu_seconds=5", "memory_mib=256",
                    "pids=16", "network=0", f"env=PATH={inside}", "--", "sh", "-c", "echo sh",
                ]
            )  # fmt: skip
            out, err = await process.stdout.read(), await process.stderr.read()
            await process.wait()
            return out, err
        finally:
            zygote.close()

    out, err = asyncio.run(go())
    assert b"cut short" not in out, (out, err)


@pytest.mark.integration
def test_a_spawn_cancelled_after_the_pid_was_written_leaves_no_sandbox(tmp_path: Path) -> None:
    """The pid sat in the pipe, unread, when the cancellation came: nobody killed PID 1."""
    if sandbox_problem():
        pytest.skip(sandbox_problem() or "")
    looping = Looping(tmp_path)

    async def go() -> None:
        zygote = Zygote()
        try:
            zygote._started()
            task = asyncio.ensure_future(zygote.spawn(looping.request))
            for _ in range(5):  # to its wait for the pid line
                await asyncio.sleep(0)
            time.sleep(1)  # the loop busy: the zygote writes the pid, and PID 1 runs
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.5)
            assert looping.marker.exists(), "the sandbox never ran"
            assert not await looping.still_runs(), "the sandbox still runs"
        finally:
            zygote.close()

    asyncio.run(go())


#: as root, in a mount namespace of its own: the Python zygote's build_root, with the
#: other sandbox's swap (folder -> link to a host folder) made right after the check
PYTHON_ZYGOTE_RACE = """
import ctypes, os, sys
from luminaguard.hypervisor.sandbox import helper
base, victim = sys.argv[1], sys.argv[2]
if ctypes.CDLL(None, use_errno=True).unshare(0x00020000) != 0:
    sys.exit("unshare")
helper.mount(None, "/", None, helper.MS_REC | helper.MS_PRIVATE)
work, root, source = base + "/work", base + "/root", base + "/source"
opened = helper.open_target

def swap_then_open(root: str, target: str, folder: bool) -> int:
    os.rename(work + "/sub", work + "/moved")  # another sandbox of the agent, racing
    os.symlink(victim, work + "/sub")
    return opened(root, target, folder)

helper.open_target = swap_then_open
spec = {"workdir": work, "mounts": [{"source": source, "target": "/work/sub/data",
                                     "read_only": True}]}
try:
    helper.build_root(spec, root)
except (helper.SetupError, OSError) as exc:
    print("refused:", exc)
"""


def test_the_python_zygote_makes_no_folder_outside_through_a_swapped_target(
    tmp_path: Path,
) -> None:
    """``build_root`` checked the target for links (then ``no_links_on_the_way``), then made it
    and mounted on it by path (``os.makedirs``, ``mount``): a folder swapped for a link in
    between (another sandbox sharing ``/work``, looping) made ``data`` wherever the link
    pointed, as root on the host: won within 20 s by a sandbox looping renames."""
    if os.getuid() != 0:
        pytest.skip("the Python zygote's setup, by hand, needs root")
    for name in ("work/sub", "root", "source", "victim"):
        (tmp_path / name).mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-c", PYTHON_ZYGOTE_RACE, str(tmp_path), str(tmp_path / "victim")],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((tmp_path / "victim").iterdir()) == [], done.stdout + done.stderr
    assert "refused:" in done.stdout and "symlink" in done.stdout, done.stdout


def test_a_pid_whose_exit_was_reported_is_never_killed_on_cancel() -> None:
    """The cancel path kills a sandbox whose ``pid N`` was written but not read. When its
    ``exit`` was written too, the zygote has reaped it and the number may name another
    process by now: that process must not be killed."""
    from luminaguard.hypervisor.sandbox.zygote import _written_pid

    bystander = subprocess.Popen(["sleep", "30"])
    read, write = os.pipe()
    try:
        os.set_blocking(read, False)
        os.write(write, f"pid {bystander.pid}\nexit 0\n".encode())
        assert _written_pid(read, bytearray()) is None
        assert bystander.poll() is None
        os.write(write, f"pid {bystander.pid}\n".encode())  # not ended: its pidfd
        pidfd = _written_pid(read, bytearray())
        assert pidfd is not None
        os.close(pidfd)
    finally:
        bystander.kill()
        bystander.wait()
        os.close(read)
        os.close(write)


@pytest.mark.integration
@pytest.mark.usefixtures("each_zygote")
def test_a_read_only_mount_is_read_only_below_its_top(tmp_path: Path) -> None:
    """Review: the Python zygote flagged a read-only bind with a remount, which flags the
    top mount only: a file system mounted below the source stayed writable (and kept suid
    and devices) inside the sandbox. Both zygotes now flag the whole tree (mount_setattr
    with AT_RECURSIVE)."""
    from luminaguard.hypervisor.base import Mount, SandboxSpec
    from luminaguard.hypervisor.sandbox.backend import SandboxBackend
    from tests.integration.conftest import sandbox_problem

    if sandbox_problem():
        pytest.skip(sandbox_problem() or "")
    if os.getuid() != 0:
        pytest.skip("mounting a file system below the source needs root")
    below = tmp_path / "data" / "below"
    below.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", below], check=True)
    spec = SandboxSpec(name="ro", workdir=tmp_path / "work", mounts=(Mount(below.parent, "/data"),))

    async def attempt() -> str:
        backend = SandboxBackend()
        handle = await backend.create(spec)
        try:
            done = await backend.exec(handle, "echo x > /data/below/planted; echo $?", 20)
            return done.stdout + done.stderr
        finally:
            await backend.destroy(handle)
            await backend.aclose()

    try:
        said = asyncio.run(attempt())
    finally:
        subprocess.run(["umount", below], check=True)
    assert not (below / "planted").exists()
    assert "Read-only file system" in said, said

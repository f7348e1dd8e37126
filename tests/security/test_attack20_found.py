"""Attack round 20: what host code does with a work folder a sandbox shaped."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError
from luminaguard.hypervisor.linux import users as sandbox_users

needs_root = pytest.mark.skipif(os.getuid() != 0, reason="giving files to a sandbox uid needs root")
UID = 300000


def _after_listing(
    monkeypatch: pytest.MonkeyPatch, act: Callable[[], None], count: int = 1
) -> None:
    """Run ``act`` once, the moment the walk has listed ``count`` folders (a racing process)."""
    real = os.scandir
    done: list[bool] = []

    @contextlib.contextmanager
    def scandir(path: str | int) -> Iterator[Iterator[os.DirEntry[str]]]:
        with real(path) as entries:  # type: ignore[arg-type]
            yield entries
        done.append(True)
        if len(done) == count:
            act()

    monkeypatch.setattr(os, "scandir", scandir)


def _host_folder(tmp_path: Path) -> Path:
    host = tmp_path / "host"
    host.mkdir(mode=0o700)
    (host / "shadow").write_text("root:secret\n")
    os.chmod(host / "shadow", 0o600)
    return host


@needs_root
def test_a_folder_swapped_for_a_symlink_mid_walk_gives_no_host_file_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: a process of the folder's earlier sandbox (a gVisor container a dead runner
    left, a sandbox whose destroy was interrupted) swaps ``/work/sub`` for a symlink to a
    host folder once ``hand_over`` has listed ``/work`` and before it walks ``sub``.

    ``_chown_below`` walked by path (``os.scandir(entry.path)``, ``os.lchown(entry.path)``):
    the symlink was followed and root gave the host folder's files to the sandbox's uid
    (``/etc/shadow``, say: read and rewritten by the sandbox). Fix: each folder opened from
    its parent's descriptor with O_NOFOLLOW, entries changed by name relative to it.
    """
    host = _host_folder(tmp_path)
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "sub" / "mine").write_text("x")

    def swap() -> None:
        os.rename(work / "sub", work / "moved")
        os.symlink(host, work / "sub")

    _after_listing(monkeypatch, swap)
    with contextlib.suppress(BackendError):  # refusing is right: the tree changed under it
        sandbox_users.hand_over(work, sandbox_users.SandboxUser(UID, None))
    assert os.lstat(host / "shadow").st_uid == 0
    assert os.lstat(host).st_uid == 0


@needs_root
def test_a_folder_moved_mid_walk_stops_the_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk climbs back by ``..``: a folder moved while it was walked is noticed."""
    work = tmp_path / "work"
    (work / "a" / "b").mkdir(parents=True)

    # listed: work, a, b; b then moves up, so its ``..`` is work, not a
    _after_listing(monkeypatch, lambda: os.rename(work / "a" / "b", work / "b"), count=3)
    with pytest.raises(BackendError, match="moved during the hand-over"):
        sandbox_users.hand_over(work, sandbox_users.SandboxUser(UID, None))


@needs_root
def test_a_tree_deeper_than_a_path_can_be_long_is_handed_over(tmp_path: Path) -> None:
    """2,500 nested folders: no path is built, one descriptor is held at a time."""
    work = tmp_path / "work"
    work.mkdir()
    fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(2500):
            os.mkdir("dd", dir_fd=fd)
            inner = os.open("dd", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
        sandbox_users.hand_over(work, sandbox_users.SandboxUser(UID, None))
        assert os.stat("leaf", dir_fd=fd, follow_symlinks=False).st_uid == UID
        assert os.fstat(fd).st_uid == UID
    finally:
        os.close(fd)
        _flatten(work)
    assert os.lstat(work).st_uid == UID


def _flatten(work: Path) -> None:
    """Remove the nested ``dd`` folders one level at a time (``rmtree`` recurses)."""
    while (work / "dd").exists():
        if (work / "dd" / "dd").exists():
            os.rename(work / "dd" / "dd", work / "next")
            os.rmdir(work / "dd")
            os.rename(work / "next", work / "dd")
        else:
            os.unlink(work / "dd" / "leaf")
            os.rmdir(work / "dd")


@pytest.mark.integration  # calls GvisorBackend.create (runsc and the disk faked)
def test_every_gvisor_sandbox_creation_reaps_a_dead_runners_containers_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: a runner driving a run on gVisor is killed; its containers live on (``runsc
    run`` dies, the sandbox stays) running the agent's code as the old uid in ``/work``.
    A long-lived runner (the server) then resumes the run: its backend reaped orphans once,
    at its first use, long before, so the orphan keeps running while ``hand_over`` walks
    the folder it writes in (the race above) and while the resumed steps run beside it.

    Fix: ``GvisorBackend.create`` reaps dead runners' containers every time, before the
    hand-over of the work folder.
    """
    from luminaguard.hypervisor.base import SandboxSpec
    from luminaguard.hypervisor.gvisor import backend as gvisor
    from luminaguard.hypervisor.gvisor import runsc

    events: list[str] = []
    found = runsc.Runsc("runsc", 20240729, tmp_path / "runsc")
    monkeypatch.setattr(gvisor, "find_runsc", lambda: found)
    monkeypatch.setattr(runsc.Runsc, "reap_orphans", lambda self: events.append("reap") or [])
    monkeypatch.setattr(gvisor, "allocate", lambda: sandbox_users.SandboxUser(UID, None))
    monkeypatch.setattr(gvisor.work_disk, "provide", lambda workdir, size: None)
    monkeypatch.setattr(gvisor, "hand_over", lambda folder, user: events.append("hand over"))

    async def two_drives() -> None:
        backend = gvisor.GvisorBackend()
        for name in ("first", "second"):
            await backend.create(SandboxSpec(name=name, workdir=tmp_path / "work"))
            assert events[-2:] == ["reap", "hand over"], events
            events.clear()

    asyncio.run(two_drives())


@pytest.mark.integration
@pytest.mark.usefixtures("sandbox")
@pytest.mark.usefixtures("each_zygote")
def test_a_mount_source_swapped_for_a_symlink_binds_no_host_folder(tmp_path: Path) -> None:
    """Attack: an agent mounts ``data`` read-write at ``/data`` and ``data/sub`` at ``/sub``
    (or another agent mounts ``data/sub``). A step replaces ``/data/sub`` with a symlink to
    a host folder; the next command's ``/sub`` is that host folder.

    The helper's ``bind`` (``mount(source, ...)``, root on the host's file system) follows
    the link, as does ``mounts_of`` (it resolves each source again whenever a sandbox is
    made). As root the sandbox's uid then reads what the host folder lets
    others read (or, read-write, plants files in a world-writable one); rootless, it is the
    runner's own uid on the runner's files. Root cause: ``sandbox/helper.py::bind`` (and
    gVisor's bundle, whose gofer opens the source by path). Fixed: both zygotes reach an
    extra mount's source one component at a time without links, and refuse a link.
    """
    from luminaguard.hypervisor.base import Mount, SandboxSpec
    from luminaguard.hypervisor.sandbox.backend import SandboxBackend

    host = _host_folder(tmp_path)
    os.chmod(host, 0o755)
    os.chmod(host / "shadow", 0o644)  # readable by others, yet outside every system folder
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    os.chmod(data, 0o777)
    spec = SandboxSpec(
        name="swap",
        workdir=tmp_path / "work",
        mounts=(Mount(data, "/data", read_only=False), Mount(data / "sub", "/sub")),
    )

    async def attempt() -> tuple[int, str, str]:
        backend = SandboxBackend()
        handle = await backend.create(spec)
        try:
            swap = await backend.exec(handle, f"rm -rf /data/sub && ln -s {host} /data/sub", 20)
            assert swap.exit_code == 0, swap.stderr
            done = await backend.exec(handle, "cat /sub/shadow", 20)
            return done.exit_code, done.stdout, done.stderr
        finally:
            await backend.destroy(handle)
            await backend.aclose()

    code, out, err = asyncio.run(attempt())
    assert "root:secret" not in out
    assert code == 125 and "passes through a symlink" in err, (code, err)


def test_a_sandbox_whose_destruction_fails_leaves_the_others_destroyed() -> None:
    """Attack: the end of a drive destroys its agents' sandboxes one after the other. When
    one destroy fails (``runsc delete`` past its 30 s on a loaded host; the drive cancelled
    again while it waits), ``SandboxSet.aclose`` stopped there: the other agents' sandboxes
    lived on, their processes still running the agents' code (and, on gVisor, holding their
    ``/work``) while the run was resumed beside them. Fix: every sandbox is destroyed, the
    first failure raised after.
    """
    from luminaguard.hypervisor.base import SandboxHandle, SandboxSpec
    from luminaguard.hypervisor.fake import FakeBackend
    from luminaguard.scheduler.sandbox_set import SandboxSet

    backend = FakeBackend()
    real = backend.destroy

    async def destroy(handle: SandboxHandle) -> None:
        if handle is backend.sandboxes[0]:
            raise BackendError("runsc delete timed out")
        await real(handle)

    async def drive_ends() -> None:
        sandboxes = SandboxSet(backend, {}, lambda name: Path("/nonexistent") / name, {})
        for name in ("a", "b", "c"):
            sandboxes.handles[name] = await backend.create(
                SandboxSpec(name=name, workdir=Path("/nonexistent") / name)
            )
        backend.destroy = destroy  # type: ignore[method-assign]
        with pytest.raises(BackendError, match="runsc delete timed out"):
            await sandboxes.aclose()

    asyncio.run(drive_ends())
    assert [sandbox.spec.name for sandbox in backend.live] == ["a"]


def test_an_approval_card_reads_no_host_file_through_a_swapped_mount_source(
    tmp_path: Path,
) -> None:
    """Attack: as above, a step swaps ``data/sub`` (the source of ``/sub``) for a symlink to
    a host folder, then asks to write ``/sub/shadow`` (a Red step). The card's diff reads
    the file "now" beneath the view's folder, ``mounts_of``'s resolved source: the link's
    target, read as root. What the sandbox's uid could never read (mode 0600) is shown to
    the approver, a remote role perhaps. Root cause: ``scheduler/sandboxes.py::mounts_of``
    (``(base / source).resolve()`` at every use) with ``runner._views``. Fixed: a source
    is only normalised, and a card reaches its view's folder without links.
    """
    from luminaguard.compiler.plan import PlannedAgent
    from luminaguard.policy.action import Action
    from luminaguard.scheduler.cards import file_diff
    from luminaguard.scheduler.sandboxes import mounts_of

    host = _host_folder(tmp_path)  # shadow: mode 0600, root's
    base = tmp_path / "config"
    (base / "data" / "sub").mkdir(parents=True)
    agent = PlannedAgent.model_validate(
        {
            "spec": {
                "policy": "p",
                "mounts": [
                    {"source": "data", "target": "/data", "read_only": False},
                    {"source": "data/sub", "target": "/sub"},
                ],
            },
            "source": "agent.yaml",
            "base_dir": str(base),
        }
    )
    (base / "data" / "sub").rmdir()  # the step, through /data
    (base / "data" / "sub").symlink_to(host)
    views = {"/work": tmp_path / "work", **{m.target: m.source for m in mounts_of(agent)}}
    write = Action(
        kind="call",
        server="filesystem",
        tool="write_file",
        args={"path": "/sub/shadow", "content": "x\n"},
    )
    diff = file_diff(write, views) or ""
    assert "root:secret" not in diff and "symbolic link" in diff, diff


def test_gvisor_refuses_a_mount_source_that_passes_through_a_link(tmp_path: Path) -> None:
    """The same swap on gVisor: runsc opens a mount's source by path, following links. The
    bundle now refuses a source with a link on the way (checked when each command's bundle
    is written; runsc's open comes later, which docs/security.md says)."""
    from luminaguard.hypervisor.base import Mount, SandboxSpec
    from luminaguard.hypervisor.gvisor.bundle import mounts

    host = _host_folder(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sub").symlink_to(host)
    spec = SandboxSpec(
        name="swap", workdir=tmp_path / "work", mounts=(Mount(tmp_path / "data" / "sub", "/sub"),)
    )
    with pytest.raises(BackendError, match="passes through a symlink"):
        mounts(spec)
    (tmp_path / "data" / "sub").unlink()
    (tmp_path / "data" / "sub").mkdir()
    assert mounts(spec)[-1]["source"] == str(tmp_path / "data" / "sub")


@pytest.mark.integration
@pytest.mark.usefixtures("sandbox")
def test_a_destroy_cancelled_while_it_waits_leaves_no_process_running(tmp_path: Path) -> None:
    """Attack: ``destroy`` killed a sandbox's processes one at a time, waiting for each;
    cancelled during the first wait (a drive cancelled again), the others lived on. Now
    every process is killed before any is waited for."""
    from luminaguard.hypervisor.base import SandboxSpec
    from luminaguard.hypervisor.sandbox.backend import SandboxBackend

    async def go() -> list[int | None]:
        backend = SandboxBackend()
        handle = await backend.create(SandboxSpec(name="t", workdir=tmp_path / "work"))
        started = [await backend.spawn(handle, ["sleep", "60"]) for _ in range(3)]
        destroying = asyncio.ensure_future(backend.destroy(handle))
        await asyncio.sleep(0)  # the kills sent, the first wait begun
        destroying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await destroying
        codes = [await asyncio.wait_for(p.wait(), 10) for p in started]
        await backend.aclose()
        return codes

    assert asyncio.run(go()) == [137, 137, 137]

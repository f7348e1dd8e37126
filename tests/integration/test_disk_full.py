"""A full disk under the state folder: exit 1 naming the folder, reads still work, resume.

The state folder lives on a small tmpfs mounted for the test (root only) and filled
with a file until ENOSPC; deleting that file gives the space back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.linux import work_disk
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from luminaguard.scheduler.store import RunStore
from luminaguard.space import DiskFull
from tests.conftest import CliResult, CliRunner, Writer
from tests.integration.test_runs import GREEN, RED, workload

pytestmark = pytest.mark.usefixtures("sandbox")


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LG_TEST_TOKEN", "tok-9f8e7d6c5b4a")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs (room for the work disks), unmounted however the test ends."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        work_disk.detach_all(mount)
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its file system is full; the file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
        with pytest.raises(OSError) as full:
            os.write(fd, b"\0")
        assert full.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def refused_as_full(result: CliResult, state: Path) -> None:
    code, err = result.code, result.err
    assert code == 1, (result.out, err)
    assert "Traceback" not in err and "internal error" not in err
    assert str(state) in err and "no space left" in err and "KiB free" in err


def test_run_on_a_full_disk_exits_1_and_reads_still_work(
    cli: CliRunner, write: Writer, small_fs: Path
) -> None:
    state = small_fs / "state"
    path = workload(write, GREEN)
    assert cli("audit", "verify", "--state", str(state)).code == 0  # the state is made
    filler = fill(small_fs)
    refused_as_full(cli("run", path, "--state", str(state), "--run-id", "r"), state)
    for args in (("status",), ("approvals",), ("audit", "verify"), ("audit", "show")):
        result = cli(*args, "--state", str(state))
        assert result.code == 0, (args, result.out, result.err)
    filler.unlink()
    result = cli("run", path, "--state", str(state), "--run-id", "r")
    assert result.code == 0, result.out + result.err
    assert cli("audit", "verify", "--state", str(state)).code == 0


def test_a_disk_filled_between_steps_is_resumed_each_step_once(
    cli: CliRunner, write: Writer, small_fs: Path
) -> None:
    state = small_fs / "state"
    path = workload(write, RED)
    assert cli("run", path, "--state", str(state), "--run-id", "r").code == 3  # ship waits
    filler = fill(small_fs)
    approve = ("approve", "r", "ship", "--state", str(state), "--as", "alice")
    refused_as_full(cli(*approve), state)
    filler.unlink()
    assert cli(*approve).code == 0
    filler = fill(small_fs)  # the runner meets the full disk now
    refused_as_full(cli("resume", "r", "--state", str(state)), state)
    for args in (("status", "r"), ("approvals", "--all"), ("audit", "verify")):
        result = cli(*args, "--state", str(state))
        assert result.code == 0, (args, result.out, result.err)
    filler.unlink()
    result = cli("resume", "r", "--state", str(state))
    assert result.code == 0, result.out + result.err
    assert cli("audit", "verify", "--state", str(state)).code == 0
    store = RunStore(state)
    try:
        steps = store.steps("r")
        assert {k: (v.state, v.attempts) for k, v in steps.items()} == {
            "make": ("succeeded", 1), "ship": ("succeeded", 1), "after": ("succeeded", 1),
        }  # fmt: skip
        started = [r.step_id for r in store.audit.records("r", event="step.started")]
        assert sorted(started) == ["after", "make", "ship"]
    finally:
        store.close()


FILL = """\
import os, sys
if not os.path.exists("/data/go"):
    sys.exit(0)  # the second time: the test took the space back
os.sync()
fd = os.open("/data/filler", os.O_WRONLY | os.O_CREAT, 0o600)
for size in (1 << 20, 4096, 1):
    try:
        while True:
            os.write(fd, bytes(size))
    except OSError:
        pass
os.close(fd)
"""

FILLING = """\
    - {id: one, agent: a, run: "echo one > /work/one.txt"}
    - {id: fill, agent: a, run: "python3 /data/fill.py", needs: [one], idempotent: true}
    - {id: three, agent: a, run: "cat /work/one.txt", needs: [fill]}
"""


def test_a_disk_filled_by_a_step_stops_the_run_and_resume_records_each_step_once(
    cli: CliRunner, write: Writer, small_fs: Path
) -> None:
    state, data = small_fs / "state", small_fs / "data"
    data.mkdir()
    data.chmod(0o777)  # the agent runs as its own user
    (data / "fill.py").write_text(FILL)
    (data / "go").touch()
    mount = f"  mounts: [{{source: {data}, target: /data, read_only: false}}]\n"
    limits = "  limits: {memory_mib: 64, timeout: 20s}\n"
    text = Path(workload(write, FILLING)).read_text().replace(limits, limits + mount)
    path = write("w.yaml", text)  # the agent gets a folder on the small disk
    # the step fills the disk: recording how it ended cannot be committed
    refused_as_full(cli("run", str(path), "--state", str(state), "--run-id", "r"), state)
    for args in (("status", "r"), ("approvals",), ("audit", "verify")):
        result = cli(*args, "--state", str(state))
        assert result.code == 0, (args, result.out, result.err)
    (data / "go").unlink()
    (data / "filler").unlink()
    result = cli("resume", "r", "--state", str(state))
    assert result.code == 0, result.out + result.err
    assert cli("audit", "verify", "--state", str(state)).code == 0
    store = RunStore(state)
    try:
        steps = {k: (v.state, v.attempts) for k, v in store.steps("r").items()}
        # the fill step ended as after a crash: idempotent, so resume ran it again
        assert steps == {
            "one": ("succeeded", 1),
            "fill": ("succeeded", 2),
            "three": ("succeeded", 1),
        }
        ended = [r.step_id for r in store.audit.records("r") if r.event.startswith("step.succ")]
        assert sorted(ended) == ["fill", "one", "three"]
        assert [r.step_id for r in store.audit.records("r", event="step.recovered")] == ["fill"]
    finally:
        store.close()


def test_a_work_disk_on_a_full_disk_is_disk_full(small_fs: Path) -> None:
    workdir = small_fs / "state" / "runs" / "r" / "agents" / "a" / "work"
    workdir.mkdir(parents=True)
    filler = fill(small_fs)
    backend = SandboxBackend()
    with pytest.raises(DiskFull, match="no space left") as raised:
        asyncio.run(backend.create(SandboxSpec(name="a", workdir=workdir)))
    assert str(workdir.parent) in str(raised.value)
    assert not any(p.name.startswith("work.disk") for p in workdir.parent.iterdir())
    filler.unlink()

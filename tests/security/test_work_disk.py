"""``/work`` is as large as the agent's ``limits.disk_mib``, and no larger (issue #10, 8).

Runs on the namespace sandbox and on gVisor (as root: the disk is a loop mount).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.linux import work_disk
from luminaguard.hypervisor.linux.system import NOBODY
from luminaguard.hypervisor.sandbox.zygote import HELPER
from tests.security.conftest import Run, new_backend


@pytest.fixture(autouse=True)
def detached(tmp_path: Path) -> Iterator[None]:
    """Root only; the work disks of the test are unmounted after it."""
    if os.getuid() != 0:
        pytest.skip("/work's disk is a loop mount: needs root")
    yield
    for point in work_disk.mounted_under(tmp_path):
        work_disk.detach(point)


def _allocated_mib(path: Path) -> float:
    return os.stat(path).st_blocks * 512 / (1 << 20)


def test_writing_past_disk_mib_fails_inside_the_sandbox(
    tmp_path: Path, run_in_sandbox: Run
) -> None:
    """Attack: an agent with ``disk_mib: 16`` writes 64 MiB into ``/work``.

    Before the fix ``/work`` was the host's folder, without limit: a 64 MiB sandbox wrote
    10 GiB onto the host's disk; here the 64 MiB were written, in both backends. Fixed by
    331da1b "sandbox: /work a loop-mounted ext4 disk of limits.disk_mib ...".
    """
    result = run_in_sandbox(
        tmp_path, "dd if=/dev/zero of=/work/big bs=1M count=64 status=none", disk_mib=16
    )
    assert result.exit_code != 0
    assert "No space left on device" in result.stderr
    work = tmp_path / "work"
    assert _allocated_mib(work / "big") <= 16
    disk = work_disk.image_of(work)
    assert os.stat(disk).st_size == 16 << 20 and _allocated_mib(disk) <= 16.5


def test_results_stay_for_later_sandboxes_and_the_host(tmp_path: Path, backend_name: str) -> None:
    """What one sandbox wrote, the next sandbox of the work folder and the host both read."""
    work = tmp_path / "agents" / "a" / "work"
    work.mkdir(parents=True)
    (work / "before.txt").write_text("was there\n")  # a folder that held files already

    async def step(command: str) -> str:
        backend = new_backend(backend_name)
        handle = await backend.create(SandboxSpec(name="a", workdir=work, disk_mib=32))
        try:
            result = await backend.exec(handle, command, 30)
        finally:
            await backend.destroy(handle)
        assert result.ok, result.stderr
        return result.stdout

    asyncio.run(step("echo result > /work/out.txt"))
    seen = asyncio.run(step("cat /work/out.txt /work/before.txt; df -m /work | tail -1"))
    assert seen.splitlines()[:2] == ["result", "was there"]
    assert int(seen.splitlines()[2].split()[1]) <= 32  # the disk's size, not the host's
    assert (work / "out.txt").read_text() == "result\n"  # the host reads the same path


def test_without_root_each_file_is_bounded_instead() -> None:
    """Not root (the user-namespace sandbox): no disk, but no file larger than disk_mib.

    The helper is run as ``nobody``, as a runner without root would run it.
    """
    folder = Path(tempfile.mkdtemp(prefix="luminaguard-unprivileged-"))
    try:
        os.chmod(folder, 0o755)
        for name in ("work", "root"):
            (folder / name).mkdir()
            os.chown(folder / name, NOBODY, NOBODY)
        spec = [f"workdir={folder / 'work'}", f"root={folder / 'root'}", "cpu_seconds=30"]
        spec += ["memory_mib=512", "pids=64", "network=0", "fsize_mib=16"]
        command = "dd if=/dev/zero of=/work/big bs=1M count=64 status=none"
        done = subprocess.run(
            ["/usr/bin/python3", "-I", "-S", str(HELPER), *spec, "--", "sh", "-c", command],
            user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        if done.returncode == 125 and "unshare" in done.stderr:
            pytest.skip(f"no unprivileged user namespaces here: {done.stderr.strip()}")
        assert done.returncode != 0
        assert "File too large" in done.stderr
        assert os.stat(folder / "work" / "big").st_size == 16 << 20
    finally:
        shutil.rmtree(folder)

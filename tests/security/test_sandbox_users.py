"""Each sandbox its own uid: nothing outside it can read its processes (issue #10, 5).

Each test runs on the namespace sandbox and on gVisor.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path

from luminaguard.hypervisor.base import SandboxSpec
from luminaguard.hypervisor.linux.system import NOBODY
from tests.security.conftest import new_backend

SECRET = "agent-token-0b1d5e"

#: run as another user on the host: every process environment it can read
SCAN = """
import os, sys
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            if sys.argv[1].encode() in f.read():
                found.append(pid)
    except OSError:
        pass
for path in sys.argv[2:]:
    try:
        with open(path, "rb") as f:
            if sys.argv[1].encode() in f.read():
                found.append(path)
    except OSError:
        pass
print(" ".join(found) or "none")
"""


def _scan(uid: int, *paths: str) -> str:
    done = subprocess.run(
        ["/usr/bin/python3", "-c", SCAN, SECRET, *paths],
        user=uid, group=uid, extra_groups=[], capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_the_sandbox_environment_is_unreadable_from_outside(
    tmp_path: Path, backend_name: str
) -> None:
    """Attack: a host process running as ``nobody`` reads a sandbox's ``/proc/PID/environ``.

    Every sandbox ran as the host's shared ``nobody``, so any process of that user (or
    another sandbox) read the agent's secrets from its environment. Fixed by 7d7cecf
    "sandbox: each sandbox its own uid from a range the runner owns (flock per uid), its
    work folder 0700; ...". (Under gVisor the environment lives in its kernel; there the
    attack failed before too, but the sandboxes shared a uid.)
    """

    async def go() -> tuple[str, str, str, int, int]:
        backend = new_backend(backend_name)
        spec = SandboxSpec(name="a", workdir=tmp_path / "a" / "work", env={"TOKEN": SECRET})
        other = SandboxSpec(name="b", workdir=tmp_path / "b" / "work")
        first, second = await backend.create(spec), await backend.create(other)
        try:
            process = await backend.spawn(first, ["sh", "-c", "id -u; exec sleep 60"])
            assert process.stdout is not None
            uid = int(await process.stdout.readline())
            other_uid = int((await backend.exec(second, "id -u", 30)).stdout)
            bundles = [str(p) for p in tmp_path.glob("a/.gvisor-a/*/config.json")]
            bundles += [str(p) for p in Path("/run/luminaguard/runsc").glob("*")]
            as_root = await asyncio.to_thread(_scan, 0)
            as_nobody = await asyncio.to_thread(_scan, NOBODY, *bundles)
            as_other = await asyncio.to_thread(_scan, other_uid, *bundles)
        finally:
            await backend.destroy(first)
            await backend.destroy(second)
        return as_root, as_nobody, as_other, uid, other_uid

    as_root, as_nobody, as_other, uid, other_uid = asyncio.run(go())
    if backend_name == "sandbox":  # the secret is there to be found (gVisor: in its kernel)
        assert as_root != "none"
    assert as_nobody == "none"
    assert as_other == "none"
    assert uid != other_uid and NOBODY not in (uid, other_uid)


def test_concurrent_sandboxes_have_their_own_uid_and_private_work_folders(
    tmp_path: Path, backend_name: str
) -> None:
    """Two sandboxes at once: different uids, neither ``nobody``, work folders 0700.

    Before, both ran as 65534 and the folders were 0755. Fixed by 7d7cecf "sandbox: each
    sandbox its own uid from a range the runner owns (flock per uid), its work folder
    0700; ...".
    """

    async def go() -> list[str]:
        backend = new_backend(backend_name)
        handles = [
            await backend.create(SandboxSpec(name=n, workdir=tmp_path / n / "work"))
            for n in ("a", "b")
        ]
        try:
            results = await asyncio.gather(
                *(backend.exec(h, "id -u; touch /work/mine; stat -c %u /work/mine", 30)
                  for h in handles)
            )  # fmt: skip
        finally:
            for handle in handles:
                await backend.destroy(handle)
        assert all(r.ok for r in results), [r.stderr for r in results]
        return [r.stdout for r in results]

    outputs = asyncio.run(go())
    uids = [int(out.split()[0]) for out in outputs]
    assert len(set(uids)) == 2 and NOBODY not in uids
    for name, uid in zip(("a", "b"), uids, strict=True):
        work = tmp_path / name / "work"
        info = os.stat(work)
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (uid, 0o700)
        assert os.stat(work / "mine").st_uid == uid  # on the host too

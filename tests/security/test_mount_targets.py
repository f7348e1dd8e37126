"""Class 3: the sandbox's set-up never follows a link the guest planted.

An agent's ``mounts`` may name a target inside ``/work``. Before commit "sandbox: a mount
target reached through a symlink is refused", a symlink the guest left at that place
(``/work/data -> /host/folder``) made the helper, still root on the host's file system
before it pivots, create the mount point wherever the link led.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError, Mount, SandboxSpec
from luminaguard.hypervisor.sandbox.backend import SandboxBackend


@pytest.mark.usefixtures("sandbox", "each_zygote")
def test_a_mount_target_through_a_planted_link_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    host = tmp_path / "host-only"
    host.mkdir()
    (work / "data").symlink_to(host)  # planted by an earlier step of the agent
    source = tmp_path / "tools.txt"
    source.write_text("tools\n")
    spec = SandboxSpec(
        name="planted",
        workdir=work,
        mounts=(Mount(source=source, target="/work/data/tools.txt"),),
    )

    async def attempt() -> str:
        backend = SandboxBackend()
        handle = await backend.create(spec)
        try:
            result = await backend.exec(handle, "true", 10)
            return result.stderr + (result.failure() or "")
        finally:
            await backend.destroy(handle)

    try:
        said = asyncio.run(attempt())
    except BackendError as exc:
        said = str(exc)
    assert "passes through a symlink" in said
    assert not (host / "tools.txt").exists()  # nothing was made where the link leads

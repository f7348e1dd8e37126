"""Processes taking one QEMU snapshot take turns: its lock file is exclusive."""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path

from luminaguard.hypervisor.vm.qemu.snapshot import exclusive


def test_taking_a_snapshot_is_exclusive_across_processes(tmp_path: Path) -> None:
    lock = tmp_path / "snapshot.lock"

    def free() -> bool:  # another open file, as another process would have
        with lock.open("a") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(other, fcntl.LOCK_UN)
            return True

    async def go() -> tuple[bool, bool]:
        async with exclusive(lock):
            held = not free()
        return held, free()

    assert asyncio.run(go()) == (True, True)

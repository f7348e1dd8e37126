"""Snapshots of a booted guest: its memory on /dev/shm, its device state in a file.

The snapshot's guest memory lives in a file on /dev/shm (``share=on`` while it is
taken); the device state is migrated to a file with ``x-ignore-shared`` so the memory
is not copied. Clones are restored from it in ``restore``. The snapshot's key is a hash
of the image and the memory size, so a changed image gets a new snapshot; processes
taking the same one take turns (a lock file next to its state).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from qemu.qmp import ConnectError, QMPClient, QMPError

from luminaguard.hypervisor.base import BackendError, SandboxSpec
from luminaguard.hypervisor.vm.image.build import CACHE, GuestImage
from luminaguard.hypervisor.vm.machine import BOOT_TIMEOUT, Snapshot, Vm, snapshot_key
from luminaguard.hypervisor.vm.qemu.command import command, launch
from luminaguard.hypervisor.vm.waiting import connect, guest_died, poll

IGNORE_SHARED = {"capabilities": [{"capability": "x-ignore-shared", "state": True}]}


async def qmp(vm: Vm, deadline: float) -> QMPClient:
    """QEMU's QMP connection, once QEMU listens (its socket file appears a moment before)."""
    assert vm.process is not None

    async def attempt() -> QMPClient | None:
        client = QMPClient("luminaguard")
        try:
            await client.connect(str(vm.qmp))
        except ConnectError:
            return None
        return client

    return await poll(attempt, deadline, "QEMU's QMP socket did not answer", vm.process, vm.folder)


async def _until(
    client: QMPClient, vm: Vm, deadline: float, query: str, field: str, wanted: set[str]
) -> str:
    """Ask ``query`` until its ``field`` is one of ``wanted``; that value."""
    assert vm.process is not None

    async def attempt() -> str | None:
        answer = await client.execute(query)
        status = str(answer.get(field)) if isinstance(answer, dict) else ""
        return status if status in wanted else None

    what = f"QEMU's {query} did not say {' or '.join(sorted(wanted))}"
    return await poll(attempt, deadline, what, vm.process, vm.folder, 0.002)


@contextlib.asynccontextmanager
async def exclusive(path: Path) -> AsyncIterator[None]:
    """Hold an exclusive lock on ``path`` against other processes (waiting for it).

    Two processes taking one snapshot at once would boot two guests in one shared
    memory file and write one state file together.
    """
    with path.open("a") as lock:
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def qmp_failed(vm: Vm, exc: QMPError) -> BackendError:
    """A QMP exchange failed: QEMU died (its logs say why) or refused the command."""
    if vm.process is not None and vm.process.poll() is not None:
        return guest_died(vm.folder)
    return BackendError(f"QEMU's QMP failed: {type(exc).__name__}: {exc}")


async def take(image: GuestImage, memory_mib: int, vcpus: int, cache: Path = CACHE) -> Snapshot:
    """The snapshot of a freshly booted guest, taken once (kept while /dev/shm holds it)."""
    key = snapshot_key(image, memory_mib, vcpus)
    ram, state = Path("/dev/shm") / f"{key}.ram", cache / f"{key}.state"
    snapshot = Snapshot(image, memory_mib, vcpus, ram, state)
    if snapshot.ram.exists() and snapshot.state.exists():
        return snapshot
    snapshot.state.parent.mkdir(parents=True, exist_ok=True)
    async with exclusive(snapshot.state.with_suffix(".lock")):
        if snapshot.ram.exists() and snapshot.state.exists():  # another process took it
            return snapshot
        await _boot_and_save(snapshot)
    return snapshot


async def _boot_and_save(snapshot: Snapshot) -> None:
    """Boot a guest whose memory is the snapshot's file, then save its device state."""
    # no state until the new one is complete, so nobody restores half a snapshot; a new
    # memory file, so clones of an older snapshot under this name keep the pages they map
    snapshot.state.unlink(missing_ok=True)
    snapshot.ram.unlink(missing_ok=True)
    image, memory_mib, vcpus = snapshot.image, snapshot.memory_mib, snapshot.vcpus
    with tempfile.TemporaryDirectory(prefix="luminaguard-snapshot-") as tmp:
        vm = Vm(SandboxSpec(name="snapshot", workdir=Path(tmp)), Path(tmp))
        vm.process = launch(
            command(vm, image, memory_mib, vcpus, snapshot.ram, share=True), vm.folder
        )
        try:
            await _save(vm, snapshot, time.monotonic() + BOOT_TIMEOUT)
        except QMPError as exc:
            raise qmp_failed(vm, exc) from exc
        finally:
            vm.kill()


async def _save(vm: Vm, snapshot: Snapshot, deadline: float) -> None:
    """Once ``vm`` has booted, stop it and migrate its device state to the snapshot's file."""
    assert vm.process is not None
    await (await connect(vm.socket, vm.process, deadline)).aclose()  # the agent waits for a host
    client = await qmp(vm, deadline)
    await client.execute("migrate-set-capabilities", IGNORE_SHARED)
    await client.execute("stop")
    partial = snapshot.state.with_suffix(".partial")
    await client.execute("migrate", {"uri": f"exec:cat > {partial}"})
    ended = {"completed", "failed", "cancelled"}
    if await _until(client, vm, deadline, "query-migrate", "status", ended) != "completed":
        raise BackendError("QEMU could not write the snapshot")
    partial.rename(snapshot.state)
    await client.disconnect()

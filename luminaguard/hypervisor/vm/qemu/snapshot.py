"""Snapshots of a booted guest, and clones restored from them copy-on-write.

The snapshot's guest memory lives in a file on /dev/shm (``share=on`` while it is
taken); the device state is migrated to a file with ``x-ignore-shared`` so the memory
is not copied. Each clone maps the same memory file privately (``share=off``): pages
are shared until the clone writes them. A clone gets fresh entropy and a new machine
id from the agent's ``reseed`` before it is handed out. The snapshot's key is a hash
of the image and the memory size, so a changed image gets a new snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from qemu.qmp import ConnectError, QMPClient

from luminaguard.hypervisor.base import BackendError, SandboxSpec
from luminaguard.hypervisor.vm.image.build import CACHE, GuestImage
from luminaguard.hypervisor.vm.machine import (
    BOOT_TIMEOUT,
    Snapshot,
    Vm,
    connect,
    snapshot_key,
    wait_for_file,
)
from luminaguard.hypervisor.vm.qemu.command import command, launch

IGNORE_SHARED = {"capabilities": [{"capability": "x-ignore-shared", "state": True}]}


async def _qmp(path: Path, process: object, deadline: float) -> QMPClient:
    await wait_for_file(path, process, deadline)  # type: ignore[arg-type]
    while True:  # the socket file appears a moment before QEMU listens on it
        client = QMPClient("luminaguard")
        try:
            await client.connect(str(path))
            return client
        except ConnectError:
            if time.monotonic() > deadline:
                raise BackendError(f"QEMU's QMP socket {path} refuses connections") from None
            await asyncio.sleep(0.01)


async def _until(client: QMPClient, query: str, field: str, wanted: set[str]) -> str:
    while True:
        answer = await client.execute(query)
        status = str(answer.get(field)) if isinstance(answer, dict) else ""
        if status in wanted:
            return status
        await asyncio.sleep(0.002)


async def take(image: GuestImage, memory_mib: int, vcpus: int, cache: Path = CACHE) -> Snapshot:
    """The snapshot of a freshly booted guest, taken once (kept while /dev/shm holds it)."""
    key = snapshot_key(image, memory_mib, vcpus)
    ram, state = Path("/dev/shm") / f"{key}.ram", cache / f"{key}.state"
    snapshot = Snapshot(image, memory_mib, vcpus, ram, state)
    if snapshot.ram.exists() and snapshot.state.exists():
        return snapshot
    snapshot.state.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="luminaguard-snapshot-") as tmp:
        vm = Vm(SandboxSpec(name="snapshot", workdir=Path(tmp)), Path(tmp))
        vm.process = launch(
            command(vm, image, memory_mib, vcpus, snapshot.ram, share=True), vm.folder
        )
        try:
            deadline = time.monotonic() + BOOT_TIMEOUT
            await wait_for_file(vm.socket, vm.process, deadline)
            await (
                await connect(vm.socket, deadline)
            ).aclose()  # booted; the agent waits for a host
            client = await _qmp(vm.qmp, vm.process, deadline)
            await client.execute("migrate-set-capabilities", IGNORE_SHARED)
            await client.execute("stop")
            partial = snapshot.state.with_suffix(".partial")
            await client.execute("migrate", {"uri": f"exec:cat > {partial}"})
            if (
                await _until(
                    client, "query-migrate", "status", {"completed", "failed", "cancelled"}
                )
                != "completed"
            ):
                raise BackendError("QEMU could not write the snapshot")
            partial.rename(snapshot.state)
            await client.disconnect()
        finally:
            vm.kill()
    return snapshot


async def restore(snapshot: Snapshot, spec: SandboxSpec) -> Vm:
    """A new VM resumed from the snapshot, reseeded, its agent connected."""
    vm = Vm(spec, Path(tempfile.mkdtemp(prefix=f"luminaguard-vm-{spec.name}-")))
    vm.process = launch(
        command(
            vm, snapshot.image, snapshot.memory_mib, snapshot.vcpus, snapshot.ram, incoming=True
        ),
        vm.folder,
    )
    deadline = time.monotonic() + BOOT_TIMEOUT
    try:
        client = await _qmp(vm.qmp, vm.process, deadline)
        await client.execute("migrate-set-capabilities", IGNORE_SHARED)
        await client.execute("migrate-incoming", {"uri": f"exec:cat {snapshot.state}"})
        await _until(client, "query-status", "status", {"paused"})
        await client.execute("cont")
        with contextlib.suppress(Exception):
            await client.disconnect()
        vm.agent = await connect(vm.socket, deadline)
        await vm.agent.reseed()
    except BaseException:
        vm.kill()
        raise
    return vm

"""Clones restored copy-on-write from a snapshot, as fast as eight at once can be.

Each clone maps the snapshot's memory file privately (``share=off``): pages are shared
until the clone writes them. Its device state is read from the state file QEMU
inherits, open read-only (``fd:``: no shell, no ``cat`` process per clone). QEMU says
when the state is loaded (a ``MIGRATION`` event; nothing polls ``query-status``), the
clone resumes, and its first request is ``reseed`` (fresh entropy, a new machine id):
its answer is also the proof that the agent is up. A clone is handed out only after it.

Where the time goes (measured, ``bench/vm_bench.py --concurrent``): under software
emulation a restored guest translates its code anew, so its first answer costs CPU
time, not waiting; eight clones at once share two cores, and the greeting is awaited
patiently (``RESTORED_FIRST_WAIT``) rather than dropped and sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path

from qemu.qmp import EventListener, QMPError

from luminaguard.hypervisor.base import BackendError, SandboxSpec
from luminaguard.hypervisor.vm.guest.client import GuestAgent
from luminaguard.hypervisor.vm.machine import BOOT_TIMEOUT, Snapshot, Vm
from luminaguard.hypervisor.vm.qemu.command import command, launch
from luminaguard.hypervisor.vm.qemu.snapshot import qmp, qmp_failed
from luminaguard.hypervisor.vm.waiting import Patience, connect, poll

#: How long a restored clone's first answer is awaited before the greeting is sent again.
#: Its port was open when the snapshot was taken, so nothing sent to it is lost: it only
#: answers late when many clones share the cores (dropping it then wastes its work).
RESTORED_FIRST_WAIT = 5.0
#: The incoming side's capabilities: memory not in the stream, and MIGRATION events.
CAPABILITIES = {
    "capabilities": [
        {"capability": "x-ignore-shared", "state": True},
        {"capability": "events", "state": True},
    ]
}
LOADED = "completed"


async def restore(snapshot: Snapshot, spec: SandboxSpec) -> Vm:
    """A new VM resumed from the snapshot, reseeded, its agent connected."""
    vm = Vm(spec, Path(tempfile.mkdtemp(prefix=f"luminaguard-vm-{spec.name}-")))
    argv = command(
        vm, snapshot.image, snapshot.memory_mib, snapshot.vcpus, snapshot.ram, incoming=True
    )
    state = os.open(snapshot.state, os.O_RDONLY | os.O_CLOEXEC)
    try:
        vm.process = launch(argv, vm.folder, pass_fds=(state,))
    finally:
        os.close(state)  # QEMU has its own copy; the same number in QEMU
    deadline = time.monotonic() + BOOT_TIMEOUT
    try:
        await _resume(vm, state, deadline)
        # the reseed is the greeting: its answer proves the agent, one request not two
        patience = Patience(RESTORED_FIRST_WAIT)
        vm.agent = await connect(vm.socket, vm.process, deadline, reseed, patience)
    except QMPError as exc:
        failure = qmp_failed(vm, exc)
        vm.kill()
        raise failure from exc
    except BaseException:
        vm.kill()
        raise
    return vm


async def reseed(agent: GuestAgent, wait: float) -> None:
    """A restored clone's greeting: fresh entropy and identity before anything else."""
    await agent.reseed(wait)


async def _resume(vm: Vm, state: int, deadline: float) -> None:
    """Load the device state from QEMU's descriptor ``state``, then resume the guest."""
    client = await qmp(vm, deadline)
    try:
        await client.execute("migrate-set-capabilities", CAPABILITIES)
        with client.listener("MIGRATION") as events:
            await client.execute("migrate-incoming", {"uri": f"fd:{state}"})
            status = await loaded(events, vm, deadline)
        if status != LOADED:
            raise BackendError(f"QEMU could not load the snapshot (migration {status})")
        await client.execute("cont")  # loaded paused: the snapshot was taken stopped
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()


async def loaded(events: EventListener, vm: Vm, deadline: float) -> str:
    """The migration's final status (``completed`` or ``failed``), from QEMU's events.

    QEMU announces ``completed`` only after the VM's run state is set (paused here),
    so ``cont`` may follow at once. The wait checks between events that QEMU still runs.
    """
    assert vm.process is not None

    async def final() -> str | None:
        try:
            event = await asyncio.wait_for(events.get(), 0.05)
        except TimeoutError:
            return None  # none yet: poll checks that QEMU runs, and the deadline
        data = event.get("data")
        status = str(data.get("status")) if isinstance(data, dict) else ""
        return status if status in {LOADED, "failed", "cancelled"} else None

    what = "QEMU did not finish loading the snapshot"
    return await poll(final, deadline, what, vm.process, vm.folder, 0)

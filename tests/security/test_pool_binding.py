"""A VM from a warm pool runs with the settings of the agent that acquired it (QEMU).

Pool clones are restored before any agent asks for them, so they were made with an
empty spec: commands and MCP servers in a pooled VM ran with no environment and the
default cpu-seconds and pids instead of the agent's ``env`` and ``limits``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import PoolConfig, SandboxSpec
from luminaguard.hypervisor.vm.qemu.backend import QemuBackend

pytestmark = pytest.mark.vm

BACKEND = QemuBackend()
if not BACKEND.availability().usable:
    pytest.skip(
        f"qemu backend unavailable: {BACKEND.availability().detail}", allow_module_level=True
    )

PROBE = "echo $AGENT_SETTING; cat /proc/self/limits"


def limit(limits: str, name: str) -> str:
    """The soft value of one line of /proc/PID/limits (``Max cpu time``...)."""
    line = next(line for line in limits.splitlines() if line.startswith(name))
    return line[len(name) :].split()[0]


def test_a_pooled_vm_runs_with_its_agents_env_and_limits() -> None:
    """Attack (on the boundary's settings): an agent with env and tight limits gets a clone
    from a warm pool; its commands and its MCP server ran with an empty environment, 300
    cpu-seconds and 128 processes. Now the clone is bound to the agent that acquired it.

    Fixed by ed14482 "pools: a clone is bound to the agent that acquired it (env, limits)".
    """
    spec = SandboxSpec(
        name="agent-x", workdir=Path("/nonexistent"), env={"AGENT_SETTING": "from-agent-x"},
        cpu_seconds=7, pids=33, pool="binding-pool",
    )  # fmt: skip

    async def go() -> tuple[str, str]:
        backend = QemuBackend()
        try:
            backend.configure_pools([PoolConfig("binding-pool", warm=1, maximum=2)])
            pool = await backend.pool("binding-pool")
            deadline = time.monotonic() + 120
            while pool.status()["warm"] < 1:  # a clone restored before the agent asked
                assert time.monotonic() < deadline, pool.status()
                await asyncio.sleep(0.05)
            vm = await backend.create(spec)
            ran = await backend.exec(vm, PROBE, 30)
            process = await backend.spawn(vm, ["/bin/sh", "-c", PROBE])
            assert process.stdout is not None
            served = (await process.stdout.read()).decode()
            await process.wait()
            await backend.destroy(vm)
            return ran.stdout, served
        finally:
            await backend.aclose()

    for output in asyncio.run(go()):
        assert output.splitlines()[0] == "from-agent-x", output
        assert limit(output, "Max cpu time") == "7", output
        assert limit(output, "Max processes") == "33", output

"""The qemu backend for real: QEMU microvm (TCG here), the guest agent, isolation, timeouts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import BackendError, ExecResult, Mount, SandboxSpec, VmShape
from luminaguard.hypervisor.vm.machine import Vm
from luminaguard.hypervisor.vm.qemu.backend import QemuBackend
from luminaguard.hypervisor.vm.waiting import connect
from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner, Writer

pytestmark = pytest.mark.vm

BACKEND = QemuBackend()
if not BACKEND.availability().usable:
    pytest.skip(
        f"qemu backend unavailable: {BACKEND.availability().detail}", allow_module_level=True
    )


class Guest:
    """One booted VM for several checks (a boot costs seconds under TCG)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.vm: Vm = self.loop.run_until_complete(
            BACKEND.create(SandboxSpec(name="t", workdir=Path("/nonexistent")))
        )

    def run(self, command: str, timeout: float = 30) -> ExecResult:
        return self.loop.run_until_complete(BACKEND.exec(self.vm, command, timeout))

    def close(self) -> None:
        self.loop.run_until_complete(BACKEND.destroy(self.vm))
        self.loop.close()


@pytest.fixture(scope="module")
def guest() -> Iterator[Guest]:
    vm = Guest()
    yield vm
    vm.close()


def test_a_command_runs_inside_the_vm(guest: Guest) -> None:
    result = guest.run("uname -r; hostname; cat /proc/1/cmdline | tr '\\0' ' '")
    assert result.ok, result.stderr
    kernel, host, init = result.stdout.splitlines()
    assert kernel.endswith("-cloud-amd64") and host == "luminaguard"
    assert init.split()[-1] == "/init"  # init became the agent: same interpreter, PID 1


def test_no_network_out_of_the_guest(guest: Guest) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
        result = guest.run(f'python3 -c "{probe}"')
        assert result.exit_code != 0 and (
            "Connection refused" in result.stderr or "unreachable" in result.stderr
        )
        interfaces = guest.run("cat /proc/net/dev").stdout
        assert "lo:" in interfaces and "eth" not in interfaces
    finally:
        server.close()


def test_the_root_is_read_only_and_work_is_writable(guest: Guest) -> None:
    for target in ("/x", "/usr/x", "/bin/x", "/etc/x"):
        assert not guest.run(f"echo bad > {target}").ok, target
    assert guest.run("echo good > /work/ok && cat /work/ok").stdout == "good\n"


def test_host_files_are_not_visible(guest: Guest, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    result = guest.run(f"cat {secret}; ls /root /home 2>&1")
    assert "s3cret" not in result.stdout and result.exit_code != 0


def test_a_step_past_its_timeout_kills_only_its_vm() -> None:
    async def go() -> tuple[ExecResult, int | None, ExecResult]:
        first = await BACKEND.create(SandboxSpec(name="a", workdir=Path("/nonexistent")))
        second = await BACKEND.create(SandboxSpec(name="b", workdir=Path("/nonexistent")))
        try:
            late = await BACKEND.exec(first, "sleep 30", 1)
            assert first.process is not None
            code = first.process.poll()
            still = await BACKEND.exec(second, "echo alive", 10)
        finally:
            await BACKEND.destroy(first)
            await BACKEND.destroy(second)
        return late, code, still

    late, code, still = asyncio.run(go())
    assert late.timed_out and code is not None  # its VM is gone
    assert still.stdout == "alive\n"  # the other VM is untouched


def test_too_little_memory_for_the_guest_root_is_a_clear_error() -> None:
    spec = SandboxSpec(name="small", workdir=Path("/nonexistent"), vm=VmShape(memory_mib=128))
    with pytest.raises(BackendError, match="before its guest agent answered: Initramfs unpacking"):
        asyncio.run(BACKEND.create(spec))


def test_a_read_only_mount_is_a_packed_copy_of_the_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "in.txt").write_text("from the host")
    mounts = (Mount(data, "/data/in"), Mount(data, "/work/also"))
    spec = SandboxSpec(name="m", workdir=tmp_path, mounts=mounts)

    async def go() -> list[ExecResult]:
        vm = await BACKEND.create(spec)
        try:
            data.joinpath("later.txt").write_text("after boot")  # a copy, not a live view
            commands = [
                "read -r line < /data/in/sub/in.txt; echo $line",
                "read -r line < /work/also/sub/in.txt; echo $line",
                "echo x > /data/in/new",
                "read -r line < /data/in/later.txt",
            ]
            return [await BACKEND.exec(vm, command, 30) for command in commands]
        finally:
            await BACKEND.destroy(vm)

    read, again, write, later = asyncio.run(go())
    assert read.stdout == again.stdout == "from the host\n", (read, again)
    assert not write.ok and "Read-only file system" in write.stderr
    assert not later.ok
    assert not (data / "new").exists()


def test_mounts_a_vm_cannot_have_are_refused_clearly(tmp_path: Path) -> None:
    writable = SandboxSpec(name="m", workdir=tmp_path, mounts=(Mount(tmp_path, "/data/x", False),))
    with pytest.raises(BackendError, match="VMs get host folders read-only only"):
        asyncio.run(BACKEND.create(writable))
    pooled = SandboxSpec(name="m", workdir=tmp_path, mounts=(Mount(tmp_path, "/data/x"),), pool="p")
    with pytest.raises(BackendError, match="not available with pools"):
        asyncio.run(BACKEND.create(pooled))


def test_a_workload_runs_on_the_qemu_backend(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    workload = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules: [{id: echo, match: {program: [echo, hostname]}, risk: green, reason: prints}]
---
apiVersion: luminaguard.dev/v1
kind: Image
metadata: {name: guest}
spec: {rootfs: agent-base}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec: {policy: p, image: guest, limits: {memory_mib: 256, timeout: 30s}}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: hello, agent: a, run: "hostname"}
    - {id: wipe, agent: a, run: "rm -rf /work/*", needs: [hello]}
"""
    path = str(write("w.yaml", workload))
    state = str(tmp_path / "s")
    assert (
        cli("run", path, "--backend", "sandbox", "--state", state, "--run-id", "refused").code == 2
    )
    assert "asks for a micro-VM" in (RunStore(Path(state)).steps("refused")["hello"].error or "")
    assert cli("run", path, "--backend", "qemu", "--state", state, "--run-id", "r").code == 3
    assert RunStore(Path(state)).steps("r")["hello"].outputs["stdout"] == "luminaguard\n"


def test_the_agent_survives_the_host_disconnecting(guest: Guest) -> None:
    import time

    async def reconnect() -> dict[str, object]:
        assert guest.vm.agent is not None and guest.vm.process is not None
        await guest.vm.agent.aclose()
        guest.vm.agent = await connect(guest.vm.socket, guest.vm.process, time.monotonic() + 30)
        return await guest.vm.agent.hello()

    hello = guest.loop.run_until_complete(reconnect())
    assert hello["pid"] == 1  # the same agent, still init's child process
    assert guest.run("echo again").stdout == "again\n"


def test_an_image_holds_only_what_its_recipe_lists(tmp_path: Path, image_cache: Path) -> None:
    import gzip
    import subprocess

    from luminaguard.hypervisor.vm.image.build import build, built_images
    from luminaguard.hypervisor.vm.image.recipe import Recipe

    (tmp_path / "tiny.yaml").write_text("tools: [cat, echo]\ndisk: {programs: [wc]}\n")
    image = build(Recipe.load(tmp_path / "tiny.yaml"), cache=image_cache)  # built, not found
    listing = subprocess.run(["cpio", "-t"], input=gzip.decompress(image.initrd.read_bytes()),
                             capture_output=True, check=True).stdout.decode().split()  # fmt: skip
    programs = {
        name.rsplit("/", 1)[-1] for name in listing if name.startswith(("bin/", "usr/bin/"))
    }
    assert programs - {"bin", "python3", "luminaguard_agent.py"} == {"cat", "echo", "sh"}
    assert not any("busybox" in name for name in listing)
    assert any(
        entry["key"] == image.key and entry["recipe"] == "tiny"
        for entry in built_images(image_cache)
    )
    assert image.disk is not None
    disk = subprocess.run(["unsquashfs", "-l", image.disk], capture_output=True, check=True)
    assert "squashfs-root/bin/wc" in disk.stdout.decode().split()  # on the tools disk only


def test_an_image_recipe_shapes_the_vm(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    write("rootfs/tiny.yaml", "tools: [echo, cat, grep]\n")
    workload = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules: [{id: all, match: {kind: run}, risk: green, reason: test}]
---
apiVersion: luminaguard.dev/v1
kind: Image
metadata: {name: tiny}
spec: {rootfs: tiny, vcpus: 2, memory_mib: 192}
---
apiVersion: luminaguard.dev/v1
kind: Image
metadata: {name: open}
spec: {rootfs: tiny, network: egress-allowlist, egress: ["pypi.org:443"]}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec: {policy: p, image: tiny}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: b}
spec: {policy: p, image: open}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: listed, agent: a, run: "echo yes"}
    - {id: unlisted, agent: a, run: "ls /"}
    - id: shape
      agent: a
      run: "grep -c ^processor /proc/cpuinfo && grep MemTotal: /proc/meminfo"
    - {id: egress, agent: b, run: "cat /etc/hosts"}
"""
    state = tmp_path / "s"
    assert (
        cli(
            "run",
            str(write("w.yaml", workload)),
            "--backend",
            "qemu",
            "--state",
            str(state),
            "--run-id",
            "r",
        ).code
        == 2
    )
    steps = RunStore(state).steps("r")
    assert steps["listed"].outputs["stdout"] == "yes\n"
    assert (
        steps["unlisted"].state == "failed" and "not found" in steps["unlisted"].outputs["stderr"]
    )
    assert "pypi.org" in steps["egress"].outputs["stdout"]  # the allow-list's names, only
    cpus, _, memory_kib, _ = steps["shape"].outputs["stdout"].split()
    assert cpus == "2" and 150 * 1024 < int(memory_kib) <= 192 * 1024  # from the Image


def test_an_mcp_call_runs_inside_the_vm(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    """The npm filesystem server on node, both from the image's read-only tools disk."""
    import shutil

    from tests.conftest import ROOT

    servers = ROOT / "mcp-servers"
    if shutil.which("node") is None or not (servers / "node_modules" / ".bin").exists():
        pytest.skip("node or the npm MCP servers are missing: run `make mcp-servers`")
    write(
        "rootfs/with-node.yaml",
        f"tools: [env, cat]\ndisk:\n  programs: [node]\n  folders: {{mcp: {servers}}}\n",
    )
    workload = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: fs, match: {server: fs, tool: [read_text_file, write_file]}, risk: green, reason: VM}
---
apiVersion: luminaguard.dev/v1
kind: Image
metadata: {name: node}
spec: {rootfs: with-node, memory_mib: 512}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  image: node
  limits: {memory_mib: 512, timeout: 2m}
  mcp_servers:
    fs: {command: /opt/mcp/node_modules/.bin/mcp-server-filesystem, args: [/work]}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: put, agent: a, call: fs.write_file, args: {path: /work/a.txt, content: from the vm}}
    - {id: read, agent: a, call: fs.read_text_file, args: {path: /work/a.txt}, needs: [put]}
    - {id: escape, agent: a, call: fs.read_text_file, args: {path: /etc/hostname}, needs: [read]}
"""
    state = tmp_path / "s"
    result = cli(
        "run",
        str(write("w.yaml", workload)),
        "--backend",
        "qemu",
        "--state",
        str(state),
        "--run-id",
        "r",
    )
    steps = RunStore(state).steps("r")
    assert steps["read"].outputs.get("text") == "from the vm", steps
    assert steps["escape"].state == "failed" and "Access denied" in (steps["escape"].error or "")
    assert result.code == 2
    assert not (
        state / "runs" / "r" / "agents" / "a" / "work" / "a.txt"
    ).exists()  # written inside the VM only

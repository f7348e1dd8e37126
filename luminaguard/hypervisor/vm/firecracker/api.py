"""A client for Firecracker's REST API over its Unix socket, and the jailer's command line.

Every request goes through one ``send(method, path, body)``; the tests validate each
one against the Firecracker API description (see ``firecracker_contract``). A micro-VM
is configured (boot source, drives, machine config, vsock), started, paused and resumed,
snapshotted, and restored from a snapshot with a per-clone vsock socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminaguard.hypervisor.base import BackendError

Body = dict[str, Any] | None
Sender = Callable[[str, str, Body], Awaitable[tuple[int, Any]]]


class FirecrackerError(BackendError):
    """Firecracker refused a request or could not be reached."""


class Unreachable(FirecrackerError):
    """Nothing listens on the API socket (yet): the request was not sent."""


async def unix_http(socket_path: Path, method: str, path: str, body: Body) -> tuple[int, Any]:
    """One HTTP/1.1 request over a Unix socket: status and decoded JSON body (or None)."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
    except OSError as exc:
        raise Unreachable(f"cannot reach the Firecracker API at {socket_path}: {exc}") from exc
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    try:
        writer.write((head + "Connection: close\r\n\r\n").encode() + payload)
        await writer.drain()
        raw = await reader.read()
    except OSError as exc:
        raise FirecrackerError(
            f"{method} {path}: no HTTP answer from {socket_path}: {exc}"
        ) from exc
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    _, _, content = rest.partition(b"\r\n\r\n")
    words = status_line.split()
    if len(words) < 2 or not words[1].isdigit():
        raise FirecrackerError(f"{method} {path}: no HTTP answer from {socket_path}")
    status = int(words[1])
    return status, json.loads(content) if content.strip() else None


@dataclass(frozen=True)
class VmConfig:
    """What one micro-VM boots: kernel, root drive or initramfs, tools disk, size, vsock."""

    kernel: Path
    rootfs: Path | None = None
    boot_args: str = "console=ttyS0 reboot=k panic=1 pci=off ro"
    vcpus: int = 1
    memory_mib: int = 128
    vsock_path: Path | None = None
    guest_cid: int = 3
    initrd: Path | None = None
    tools_disk: Path | None = None


class FirecrackerApi:
    """The calls LuminaGuard makes, each one request through ``send``."""

    def __init__(self, send: Sender) -> None:
        self.send = send

    async def _call(self, method: str, path: str, body: Body = None) -> Any:
        status, answer = await self.send(method, path, body)
        if status >= 300:
            fault = answer.get("fault_message") if isinstance(answer, dict) else answer
            raise FirecrackerError(f"{method} {path}: HTTP {status}: {fault}")
        return answer

    async def configure(self, config: VmConfig) -> None:
        """Boot source, drives (read-only), machine size and vsock: all pre-boot."""
        boot = {"kernel_image_path": str(config.kernel), "boot_args": config.boot_args}
        if config.initrd is not None:
            boot["initrd_path"] = str(config.initrd)
        await self._call("PUT", "/boot-source", boot)
        # Firecracker answers a virtio-blk GET_ID with the drive id: init finds "lgtools" by it
        for drive_id, path in (("rootfs", config.rootfs), ("lgtools", config.tools_disk)):
            if path is not None:
                drive = {"drive_id": drive_id, "path_on_host": str(path), "is_read_only": True}
                root = {"is_root_device": drive_id == "rootfs"}
                await self._call("PUT", f"/drives/{drive_id}", {**drive, **root})
        size = {"vcpu_count": config.vcpus, "mem_size_mib": config.memory_mib, "smt": False}
        await self._call("PUT", "/machine-config", size)
        if config.vsock_path is not None:
            vsock = {"guest_cid": config.guest_cid, "uds_path": str(config.vsock_path)}
            await self._call("PUT", "/vsock", vsock)

    async def start(self) -> None:
        """Boot the configured VM."""
        await self._call("PUT", "/actions", {"action_type": "InstanceStart"})

    async def pause(self) -> None:
        """Pause the vCPUs (before a snapshot)."""
        await self._call("PATCH", "/vm", {"state": "Paused"})

    async def resume(self) -> None:
        """Resume the vCPUs."""
        await self._call("PATCH", "/vm", {"state": "Resumed"})

    async def snapshot(self, state: Path, memory: Path) -> None:
        """Write a full snapshot of the paused VM: device state and memory."""
        files = {"snapshot_path": str(state), "mem_file_path": str(memory)}
        await self._call("PUT", "/snapshot/create", {"snapshot_type": "Full", **files})

    async def restore(self, state: Path, memory: Path, vsock_path: Path | None) -> None:
        """Load a snapshot into a fresh process, memory mapped copy-on-write, and resume it.

        ``vsock_path`` gives the clone its own vsock socket, so clones do not collide.
        """
        body: dict[str, Any] = {
            "snapshot_path": str(state),
            "mem_backend": {"backend_type": "File", "backend_path": str(memory)},
            "resume_vm": True,
        }
        if vsock_path is not None:
            body["vsock_override"] = {"uds_path": str(vsock_path)}
        await self._call("PUT", "/snapshot/load", body)

    async def describe(self) -> Any:
        """The instance information (state, id, version)."""
        return await self._call("GET", "/")


def jailer_command(
    vm_id: str,
    firecracker: Path,
    uid: int,
    gid: int,
    chroot_base: Path,
    jailer: Path = Path("jailer"),
) -> list[str]:
    """The jailer invocation: Firecracker in a chroot, its own namespaces, unprivileged."""
    return [
        str(jailer), "--id", vm_id, "--exec-file", str(firecracker),
        "--uid", str(uid), "--gid", str(gid), "--chroot-base-dir", str(chroot_base),
        "--new-pid-ns", "--", "--api-sock", "/run/firecracker.socket",
    ]  # fmt: skip

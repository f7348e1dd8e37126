"""Host folders for a VM: each read-only mount packed into a squashfs disk of its own.

A VM shares no live folder with the host. A read-only mount becomes a squashfs image
of the folder as it is when the VM boots, attached as a read-only virtio-blk drive
(serial ``lgmount<N>``) that the guest's init mounts at the target. A read-write mount
would give the guest a live path into the host, which is what the VM is there to
prevent: it is refused (files come back through the agent's work folder instead).

The folder's content is untrusted. ``mksquashfs`` stores a symbolic link as the link
(resolved inside the guest, against the guest's own files) and a FIFO or device as
the node: the host follows none of them while packing, and reads nothing else of the
folder (``tests/security/test_folder_disks.py``).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from luminaguard.hypervisor.base import BackendError, Mount
from luminaguard.hypervisor.vm.image.build import squashfs


@dataclass(frozen=True)
class FolderDisk:
    """One packed folder: the image file and where the guest mounts it."""

    image: Path
    target: str

    @staticmethod
    def serial(index: int) -> str:
        """The drive serial the guest finds disk ``index`` by."""
        return f"lgmount{index}"


def check(mounts: tuple[Mount, ...]) -> None:
    """BackendError for a mount a VM cannot have."""
    for mount in mounts:
        if not mount.read_only:
            raise BackendError(
                f"mount {mount.target}: VMs get host folders read-only only (set read_only: "
                "true); results come back through the agent's work folder"
            )
        if not mount.source.is_dir():
            raise BackendError(f"mount {mount.target}: {mount.source} is not a folder")


def pack(mounts: tuple[Mount, ...], folder: Path) -> list[FolderDisk]:
    """A squashfs image of each mount's folder, written into ``folder``."""
    check(mounts)
    disks = []
    for index, mount in enumerate(mounts):
        image = folder / f"mount{index}.squashfs"
        try:
            squashfs(mount.source, image)
        except subprocess.CalledProcessError as exc:
            problem = (exc.stderr or "").strip()
            raise BackendError(f"mount {mount.target}: mksquashfs failed: {problem}") from exc
        disks.append(FolderDisk(image, mount.target))
    return disks

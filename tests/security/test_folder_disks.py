"""Section 3 of issue #10, for VMs: packing a mounted folder follows none of its links.

A read-only mount becomes a squashfs image on the host (``folder_disks.pack``, run as
root). The folder's content is untrusted: a symlink in it must be stored as that
symlink, never as the content of the host file it names, and a FIFO must not block
the packer. ``mksquashfs`` already behaved so before issue #10; this test holds it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from luminaguard.hypervisor.base import Mount
from luminaguard.hypervisor.vm.folder_disks import pack

MARKER = "host-secret-3d9a0b"


@pytest.mark.skipif(
    not (shutil.which("mksquashfs") and shutil.which("unsquashfs")), reason="no squashfs-tools"
)
def test_links_in_a_mounted_folder_are_packed_as_links(tmp_path: Path) -> None:
    """Attack: a mounted folder holds links to host secrets and a FIFO; the disk has neither."""
    secrets = tmp_path / "host-only"
    secrets.mkdir()
    (secrets / "shadow").write_text(MARKER)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "config").symlink_to(secrets / "shadow")
    (folder / "etc").symlink_to(secrets)
    os.mkfifo(folder / "pipe")
    (folder / "readme").write_text("plain\n")
    out = tmp_path / "disks"
    out.mkdir()
    [disk] = pack((Mount(folder, "/data"),), out)
    assert MARKER.encode() not in disk.image.read_bytes()
    listing = subprocess.run(
        ["unsquashfs", "-lls", "-d", "/", str(disk.image)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"/config -> {secrets / 'shadow'}" in listing
    assert f"/etc -> {secrets}" in listing
    assert not [line for line in listing.splitlines() if "/etc/" in line.split(" -> ")[0]]
    extracted = tmp_path / "extracted"
    subprocess.run(["unsquashfs", "-d", str(extracted), str(disk.image)], check=True,
                   capture_output=True)  # fmt: skip
    assert (extracted / "config").is_symlink() and (extracted / "pipe").is_fifo()
    assert (extracted / "readme").read_text() == "plain\n"

"""Building the guest a micro-VM boots: the distribution's kernel and an initramfs.

The kernel comes from the system package manager (``apt-get download`` of the cloud
kernel), unpacked to an uncompressed ``vmlinux`` (it boots faster than the bzImage).
The initramfs holds busybox, the virtio modules, python3 with its standard library and
the guest agent; its init mounts tmpfs at /work and /tmp, makes the root read-only, and
execs the agent on the virtio-serial port. Builds are cached under a hash of their
inputs, so a changed agent or init builds a new image.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "rootfs" / "agent" / "luminaguard_agent.py"
CACHE = Path(os.environ.get("LUMINAGUARD_CACHE", Path.home() / ".cache" / "luminaguard")) / "images"
MODULES = ("drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_mmio",
           "drivers/char/virtio_console")  # fmt: skip
UNNEEDED = ("test", "idlelib", "tkinter", "ensurepip", "lib2to3", "__pycache__", "site-packages",
            "dist-packages", "config-*", "turtledemo", "pydoc_data")  # fmt: skip
PYTHON = "/usr/bin/python3.11"
INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t tmpfs -o size=64m,nosuid,nodev tmpfs /work
/bin/busybox mount -t tmpfs -o size=16m,nosuid,nodev tmpfs /tmp
/bin/busybox mount -t tmpfs -o size=1m,nosuid,nodev tmpfs /run
/bin/busybox hostname luminaguard
/bin/busybox mount -o remount,ro /
for m in virtio_ring virtio virtio_mmio virtio_console; do
  /bin/busybox insmod /lib/modules/$m.ko
done
while [ ! -e /dev/vport0p1 ]; do /bin/busybox sleep 0.01; done
export PATH=/bin:/usr/bin
exec /usr/bin/python3 -I -S -B /usr/bin/luminaguard_agent.py --device /dev/vport0p1 --workdir /work
"""


@dataclass(frozen=True)
class GuestImage:
    """A bootable guest: kernel and initramfs."""

    kernel: Path
    initrd: Path
    key: str


def _run(*argv: str | Path, cwd: Path | None = None) -> str:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def kernel(cache: Path = CACHE) -> tuple[Path, Path]:
    """The uncompressed vmlinux and module tree of the distribution's cloud kernel."""
    folder = cache / "kernel"
    vmlinux = folder / "vmlinux"
    if not vmlinux.exists():
        folder.mkdir(parents=True, exist_ok=True)
        depends = _run("apt-cache", "depends", "linux-image-cloud-amd64")
        package = next(
            line.split()[-1] for line in depends.splitlines() if "Depends: linux-image-" in line
        )
        _run("apt-get", "download", package, cwd=folder)
        _run("dpkg", "-x", next(folder.glob("*.deb")), folder / "x")
        data = Path(glob.glob(str(folder / "x" / "boot" / "vmlinuz-*"))[0]).read_bytes()
        payload = data[data.find(b"\x02\x21\x4c\x18") :]  # the lz4 (legacy) stream in vmlinuz
        partial = folder / "vmlinux.partial"
        with open(partial, "wb") as out:
            subprocess.run(
                ["lz4", "-dc"], input=payload, stdout=out, stderr=subprocess.DEVNULL, check=False
            )
        partial.rename(vmlinux)
    return vmlinux, Path(glob.glob(str(folder / "x" / "lib" / "modules" / "*" / "kernel"))[0])


def _populate(root: Path, modules: Path) -> None:
    for folder in (
        "bin",
        "proc",
        "sys",
        "dev",
        "work",
        "tmp",
        "run",
        "etc",
        "lib/modules",
        "usr/bin",
        "usr/lib",
    ):
        (root / folder).mkdir(parents=True)
    (root / "etc" / "machine-id").symlink_to("/run/machine-id")  # written per clone (reseed)
    shutil.copy("/usr/bin/busybox", root / "bin" / "busybox")
    for applet in _run("busybox", "--list").split():
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for module in MODULES:
        shutil.copy(modules / f"{module}.ko", root / "lib" / "modules")
    shutil.copy(PYTHON, root / "usr" / "bin" / "python3")
    for path in (word for word in _run("ldd", PYTHON).split() if word.startswith("/")):
        (root / path[1:]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / path[1:])
    shutil.copytree(
        "/usr/lib/python3.11",
        root / "usr" / "lib" / "python3.11",
        ignore=shutil.ignore_patterns(*UNNEEDED),
    )
    shutil.copy(AGENT, root / "usr" / "bin")
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)


def build(cache: Path = CACHE) -> GuestImage:
    """The guest image, built once per distinct input (kernel, python, agent, init)."""
    vmlinux, modules = kernel(cache)
    inputs = [str(vmlinux.stat().st_size), PYTHON, AGENT.read_text(), INIT, str(UNNEEDED)]
    key = hashlib.sha256("\0".join(inputs).encode()).hexdigest()[:16]
    image = cache / f"initrd-{key}.cpio.gz"
    if not image.exists():
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            _populate(root, modules)
            files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
            archive = subprocess.run(
                ["cpio", "-o", "-H", "newc"], cwd=root, input=files, capture_output=True, check=True
            )
            partial = image.with_suffix(".partial")
            partial.write_bytes(gzip.compress(archive.stdout, compresslevel=1))
            partial.rename(image)
    return GuestImage(vmlinux, image, key)


def missing_tools() -> list[str]:
    """What this machine lacks to build and boot a guest (empty when nothing)."""
    needed = ["qemu-system-x86_64", "busybox", "lz4", "cpio", "apt-get", "dpkg", "ldd"]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    return missing + ([PYTHON] if not Path(PYTHON).exists() else [])

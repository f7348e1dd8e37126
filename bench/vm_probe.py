"""Probe for the micro-VM work: boot the guest agent in a QEMU microvm, time it.

Builds (and caches) a guest from the distribution's cloud kernel (``apt-get download``),
busybox, the host's python3 and ``rootfs/agent/luminaguard_agent.py`` as an initramfs,
boots it with QEMU microvm (TCG; there is no hardware KVM on these machines), talks to
the agent over virtio-serial with ``luminaguard.transport.guest_agent``, and prints
cold boot to agent-ready and the exec round trip. Needs ``scripts/install-vm-deps.sh``.
This is the groundwork of the ``qemu`` backend, not the backend.
Run: .venv/bin/python bench/vm_probe.py [--boots N]
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import gzip
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from luminaguard.transport.base import TransportError
from luminaguard.transport.guest_agent import GuestAgent

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "luminaguard" / "vm-probe"
MODULES = ("drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_mmio",
           "drivers/char/virtio_console")  # fmt: skip
UNNEEDED = ("test", "idlelib", "tkinter", "ensurepip", "lib2to3", "__pycache__", "site-packages",
            "dist-packages", "config-*", "turtledemo", "pydoc_data")  # fmt: skip
INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t tmpfs -o size=64m tmpfs /work
for m in virtio_ring virtio virtio_mmio virtio_console; do
  /bin/busybox insmod /lib/modules/$m.ko
done
while [ ! -e /dev/vport0p1 ]; do /bin/busybox sleep 0.01; done
export PATH=/bin:/usr/bin
exec /usr/bin/python3 -I -S -B /usr/bin/luminaguard_agent.py --device /dev/vport0p1 --workdir /work
"""


def kernel() -> tuple[Path, Path]:
    """The uncompressed vmlinux and the module tree of the distribution's cloud kernel."""
    folder = CACHE / "kernel"
    vmlinux = folder / "vmlinux"
    if not vmlinux.exists():
        folder.mkdir(parents=True, exist_ok=True)
        depends = subprocess.run(
            ["apt-cache", "depends", "linux-image-cloud-amd64"],
            capture_output=True,
            text=True,
            check=True,
        )
        package = next(
            line.split()[-1]
            for line in depends.stdout.splitlines()
            if "Depends: linux-image-" in line
        )
        subprocess.run(
            ["apt-get", "download", package], cwd=folder, check=True, capture_output=True
        )
        subprocess.run(["dpkg", "-x", next(folder.glob("*.deb")), folder / "x"], check=True)
        data = Path(glob.glob(str(folder / "x" / "boot" / "vmlinuz-*"))[0]).read_bytes()
        payload = data[data.find(b"\x02\x21\x4c\x18") :]  # the lz4 (legacy) stream inside vmlinuz
        with open(vmlinux, "wb") as out:
            subprocess.run(
                ["lz4", "-dc"], input=payload, stdout=out, stderr=subprocess.DEVNULL, check=False
            )
    modules = Path(glob.glob(str(folder / "x" / "lib" / "modules" / "*" / "kernel"))[0])
    return vmlinux, modules


def initramfs(modules: Path) -> Path:
    """busybox, the virtio modules, python3 with its libraries and stdlib, the agent."""
    image = CACHE / "initrd.cpio.gz"
    if image.exists():
        return image
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in (
            "bin",
            "proc",
            "sys",
            "dev",
            "work",
            "tmp",
            "lib/modules",
            "usr/bin",
            "usr/lib",
        ):
            (root / folder).mkdir(parents=True)
        shutil.copy("/usr/bin/busybox", root / "bin" / "busybox")
        for applet in subprocess.run(
            ["busybox", "--list"], capture_output=True, text=True
        ).stdout.split():
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
        for module in MODULES:
            shutil.copy(modules / f"{module}.ko", root / "lib" / "modules")
        shutil.copy("/usr/bin/python3.11", root / "usr" / "bin" / "python3")
        libraries = subprocess.run(
            ["ldd", "/usr/bin/python3.11"], capture_output=True, text=True
        ).stdout
        for path in (word for word in libraries.split() if word.startswith("/")):
            (root / path[1:]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, root / path[1:])
        skip = shutil.ignore_patterns(*UNNEEDED)
        shutil.copytree("/usr/lib/python3.11", root / "usr" / "lib" / "python3.11", ignore=skip)
        shutil.copy(ROOT / "rootfs" / "agent" / "luminaguard_agent.py", root / "usr" / "bin")
        (root / "init").write_text(INIT)
        (root / "init").chmod(0o755)
        files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
        archive = subprocess.run(
            ["cpio", "-o", "-H", "newc"], cwd=root, input=files, capture_output=True, check=True
        )
        image.write_bytes(gzip.compress(archive.stdout, compresslevel=1))
    return image


def tsc_khz() -> int:
    """The host's TSC in kHz: TCG guests hang calibrating without it (see shared notes)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return int(float(line.split(":")[1]) * 1000)
    return 2_000_000


async def boot(vmlinux: Path, initrd: Path, folder: Path) -> tuple[float, float]:
    """Seconds from starting QEMU to the agent's hello, and one exec round trip."""
    sock = folder / "agent.sock"
    started = time.perf_counter()
    qemu = subprocess.Popen([
        "qemu-system-x86_64", "-M", "microvm,pit=on,pic=on,rtc=on", "-accel", "tcg", "-m", "256",
        "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
        "-serial", f"file:{folder / 'console.log'}",
        "-kernel", str(vmlinux), "-initrd", str(initrd),
        "-append", f"console=ttyS0 reboot=t panic=-1 quiet tsc_early_khz={tsc_khz()}",
        "-device", "virtio-serial-device",
        "-chardev", f"socket,id=agent,path={sock},server=on,wait=off",
        "-device", "virtserialport,chardev=agent,name=luminaguard",
    ])  # fmt: skip
    try:
        while not sock.exists():
            await asyncio.sleep(0.005)
        agent = await _agent(sock)
        ready = time.perf_counter() - started
        start = time.perf_counter()
        result = await agent.exec("echo ok", 10)
        assert result.stdout == "ok\n", result
        return ready, time.perf_counter() - start
    finally:
        qemu.kill()
        qemu.wait()


async def _agent(sock: Path) -> GuestAgent:
    """Connect and wait for hello (QEMU drops a connection made before the guest opens the port)."""
    deadline = time.monotonic() + 60
    while True:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        agent = GuestAgent(reader, writer)
        try:
            await agent.request("hello", wait=0.5)
            return agent
        except TransportError:
            await agent.aclose()
            if time.monotonic() > deadline:
                raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boots", type=int, default=3)
    args = parser.parse_args()
    vmlinux, modules = kernel()
    image = initramfs(modules)
    samples = []
    for _ in range(args.boots):
        with tempfile.TemporaryDirectory() as tmp:
            samples.append(asyncio.run(boot(vmlinux, image, Path(tmp))))
    ready = statistics.median(s[0] for s in samples)
    exec_rtt = statistics.median(s[1] for s in samples)
    print(
        f"QEMU microvm (TCG), cold boot to guest-agent hello, median of {args.boots}: {ready:.2f} s"
    )
    print(f"exec round trip over virtio-serial (echo ok): {exec_rtt * 1000:.0f} ms")
    print(f"initramfs: {image.stat().st_size / 1e6:.0f} MB (python3 + stdlib + busybox + agent)")
    print(
        "reproduce: scripts/install-vm-deps.sh && "
        f".venv/bin/python bench/vm_probe.py --boots {args.boots}"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/python3 -SB
"""The guest's init (PID 1): set the guest up, then become the guest agent.

Mounts, loads the virtio modules, makes the root read-only, then runs the guest agent
in this same interpreter (one Python start-up, not two): on virtio-serial under QEMU, on
vsock port 1024 when the kernel command line says ``LUMINAGUARD_CHANNEL=vsock`` (Firecracker).

Standard library only. There is no shell in the image beyond what the recipe lists.
"""

import ctypes
import os
import runpy
import sys
import time

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
SYS_FINIT_MODULE = 313  # x86_64
MODULES = ("virtio_ring", "virtio", "virtio_mmio", "virtio_console", "virtio_blk", "squashfs")
VSOCK_MODULES = ("vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport")
VSOCK_PORT = 1024
libc = ctypes.CDLL(None, use_errno=True)


def mount(source, target, fstype, flags=0, data=None):
    """Mount a filesystem, or say on the console why it failed."""
    args = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    if libc.mount(args[0], args[1], args[2], flags, args[3]) != 0:
        print(f"init: mount {target}: {os.strerror(ctypes.get_errno())}", file=sys.stderr)


def load(module):
    """Load one kernel module from /lib/modules."""
    fd = os.open(f"/lib/modules/{module}.ko", os.O_RDONLY)
    libc.syscall(SYS_FINIT_MODULE, fd, b"", 0)
    os.close(fd)


def main():
    """Set the guest up and become the agent."""
    mount("proc", "/proc", "proc")
    mount("sysfs", "/sys", "sysfs")
    mount("devtmpfs", "/dev", "devtmpfs")
    mount("tmpfs", "/work", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m")
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m")
    mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
    libc.sethostname(b"luminaguard", 11)
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY)
    vsock = os.environ.pop("LUMINAGUARD_CHANNEL", "") == "vsock"  # Firecracker; else QEMU
    for module in MODULES + (VSOCK_MODULES if vsock else ()):
        load(module)
    if os.environ.pop("LUMINAGUARD_DISK", None):  # the recipe's tools disk
        while not os.path.exists("/dev/vda"):
            time.sleep(0.01)
        mount("/dev/vda", "/opt", "squashfs", MS_RDONLY)
    channel = ["--vsock", str(VSOCK_PORT)] if vsock else ["--device", "/dev/vport0p1"]
    while not vsock and not os.path.exists("/dev/vport0p1"):
        time.sleep(0.01)
    os.environ.pop("PYTHONHASHSEED", None)  # only for this early start (see microvm.command)
    os.environ.update({"PATH": "/usr/bin:/bin:/opt/bin", "HOME": "/work"})
    sys.argv = ["luminaguard_agent.py", *channel, "--workdir", "/work"]
    runpy.run_path("/usr/bin/luminaguard_agent.py", run_name="__main__")


main()

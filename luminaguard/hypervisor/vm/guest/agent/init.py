#!/usr/bin/python3 -SB
"""The guest's init (PID 1): set the guest up, then become the guest agent.

Mounts, loads the virtio modules, makes the root read-only, then runs the guest agent
in this same interpreter (one Python start-up, not two): on virtio-serial under QEMU, on
vsock port 1024 when the kernel command line says ``LUMINAGUARD_CHANNEL=vsock`` (Firecracker).

Standard library only. There is no shell in the image beyond what the recipe lists.
"""

import ctypes
import fcntl
import os
import runpy
import socket
import struct
import sys
import time

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
SYS_FINIT_MODULE = 313  # x86_64
MODULES = ("virtio_ring", "virtio", "virtio_mmio", "virtio_console", "virtio_blk", "squashfs")
VSOCK_MODULES = ("vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport")
VSOCK_PORT = 1024
NET_MODULES = ("failover", "net_failover", "virtio_net")
SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCSIFADDR, SIOCSIFNETMASK = 0x8913, 0x8914, 0x8916, 0x891C
IFF_UP = 1
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


def interface(name, address=None, netmask=None):
    """Give a network interface an IPv4 address (if any) and bring it up."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for request, value in ((SIOCSIFADDR, address), (SIOCSIFNETMASK, netmask)):
        if value is not None:
            inet = struct.pack("HH4s8x", socket.AF_INET, 0, socket.inet_aton(value))
            fcntl.ioctl(sock, request, struct.pack("16s16s", name.encode(), inet))
    flags = struct.unpack(
        "16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16sh", name.encode(), 0))
    )[1]
    fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", name.encode(), flags | IFF_UP))
    sock.close()


def network(address, hosts):
    """The egress allow-list's side in the guest: eth0 on 10.0.2.0/24 and the hosts file."""
    for module in NET_MODULES:
        load(module)
    while not os.path.exists("/sys/class/net/eth0"):
        time.sleep(0.01)
    interface("lo")
    interface("eth0", address, "255.255.255.0")
    lines = ["127.0.0.1 localhost"] + [
        entry.replace("=", " ") for entry in hosts.split(";") if entry
    ]
    with open("/run/hosts", "w") as file:
        file.write("\n".join(lines) + "\n")


def disk(serial):
    """The block device whose virtio serial is ``serial`` (waiting for it to appear)."""
    while True:
        for name in os.listdir("/sys/block"):
            try:
                with open(f"/sys/block/{name}/serial") as found:
                    if found.read().strip() == serial:
                        return f"/dev/{name}"
            except OSError:
                continue
        time.sleep(0.01)


def main():
    """Set the guest up and become the agent."""
    mount("proc", "/proc", "proc")
    mount("sysfs", "/sys", "sysfs")
    mount("devtmpfs", "/dev", "devtmpfs")
    mount("tmpfs", "/work", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m")
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m")
    mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
    libc.sethostname(b"luminaguard", 11)
    targets = [t for t in os.environ.pop("LUMINAGUARD_MOUNTS", "").split(";") if t]
    for target in targets:  # mount points, while the root is still writable
        os.makedirs(target, exist_ok=True)
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY)
    vsock = os.environ.pop("LUMINAGUARD_CHANNEL", "") == "vsock"  # Firecracker; else QEMU
    for module in MODULES + (VSOCK_MODULES if vsock else ()):
        load(module)
    address = os.environ.pop("LUMINAGUARD_NET", None)
    if address:  # an egress allow-list: see luminaguard/hypervisor/egress.py
        network(address, os.environ.pop("LUMINAGUARD_HOSTS", ""))
    if os.environ.pop("LUMINAGUARD_DISK", None):  # the recipe's tools disk
        mount(disk("lgtools"), "/opt", "squashfs", MS_RDONLY)
    for index, target in enumerate(targets):  # host folders, packed read-only
        mount(disk(f"lgmount{index}"), target, "squashfs", MS_RDONLY)
    channel = ["--vsock", str(VSOCK_PORT)] if vsock else ["--device", "/dev/vport0p1"]
    while not vsock and not os.path.exists("/dev/vport0p1"):
        time.sleep(0.01)
    os.environ.pop("PYTHONHASHSEED", None)  # only for this early start (see microvm.command)
    os.environ.update({"PATH": "/usr/bin:/bin:/opt/bin", "HOME": "/work"})
    sys.argv = ["luminaguard_agent.py", *channel, "--workdir", "/work"]
    runpy.run_path("/usr/bin/luminaguard_agent.py", run_name="__main__")


main()

"""The egress allow-list of a VM: only the listed ``host:port`` pairs, nothing else.

The guest gets one virtio-net device on QEMU's user-mode network with ``restrict=on``:
it cannot reach the host or the outside world by itself. Each allowed host gets a
private address (10.0.2.100 and up) in the guest's hosts file, and each allowed
``host:port`` a ``guestfwd`` rule: a connection to that address and port starts
``egress_relay.py HOST PORT`` on the host, which connects to the real host and relays
the bytes. TLS is end to end (the guest speaks to the real name). No DNS, no other
address, no other port.
"""

from __future__ import annotations

import sys
from pathlib import Path

from luminaguard.hypervisor.base import BackendError

RELAY = Path(__file__).with_name("egress_relay.py")
GUEST_ADDRESS = "10.0.2.15"
FIRST_HOST = 100


def parse(entry: str) -> tuple[str, int]:
    """``("pypi.org", 443)`` from ``"pypi.org:443"``; BackendError when malformed."""
    host, _, port = entry.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "," in host:
        raise BackendError(f"egress entry {entry!r} is not HOST:PORT")
    return host, int(port)


def addresses(egress: tuple[str, ...]) -> dict[str, str]:
    """Each allowed host's private address inside the guest."""
    hosts = dict.fromkeys(parse(entry)[0] for entry in egress)
    if len(hosts) > 150:
        raise BackendError("at most 150 hosts in an egress allow-list")
    return {host: f"10.0.2.{FIRST_HOST + i}" for i, host in enumerate(hosts)}


def qemu_args(egress: tuple[str, ...]) -> list[str]:
    """The network device and its restricted user-mode backend with one rule per entry."""
    mapped = addresses(egress)
    rules = []
    for entry in egress:
        host, port = parse(entry)
        relay = f"{sys.executable} {RELAY} {host} {port}"
        rules.append(f"guestfwd=tcp:{mapped[host]}:{port}-cmd:{relay}")
    netdev = ",".join(["user", "id=egress", "restrict=on", "ipv6=off", *rules])
    return ["-netdev", netdev, "-device", "virtio-net-device,netdev=egress"]


def kernel_args(egress: tuple[str, ...]) -> str:
    """What the guest's init needs: its address and the hosts file entries."""
    hosts = ";".join(f"{address}={host}" for host, address in addresses(egress).items())
    return f" LUMINAGUARD_NET={GUEST_ADDRESS} LUMINAGUARD_HOSTS={hosts}"

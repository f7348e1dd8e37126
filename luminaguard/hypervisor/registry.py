"""The backends by name, and what this machine can run (``luminaguard doctor``)."""

from __future__ import annotations

import os
from collections.abc import Callable

from luminaguard.errors import UsageError
from luminaguard.hypervisor.base import Availability, Backend
from luminaguard.hypervisor.gvisor.backend import GvisorBackend
from luminaguard.hypervisor.sandbox.backend import SandboxBackend
from luminaguard.hypervisor.vm.firecracker.backend import FirecrackerBackend
from luminaguard.hypervisor.vm.kvm import hardware_kvm
from luminaguard.hypervisor.vm.qemu.backend import QemuBackend

DEFAULT = "sandbox"

#: Backends this version implements: what ``--backend`` accepts and ``doctor`` reports.
#: ``hypervisor.fake.FakeBackend`` (runs nothing, for tests) is deliberately not here.
BACKENDS: dict[str, Callable[[], Backend]] = {
    "sandbox": SandboxBackend,
    "gvisor": GvisorBackend,
    "qemu": QemuBackend,
    "firecracker": FirecrackerBackend,
}


def backend(name: str) -> Backend:
    """A new backend by name, or a UsageError listing the known ones."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r} (available: {', '.join(sorted(BACKENDS))})")
    return BACKENDS[name]()


def _kvm() -> str:
    if not os.path.exists("/dev/kvm"):
        return "no /dev/kvm"
    if not hardware_kvm():
        return (
            "KVM present but not usable for stock kernels (no vmx/svm: not hardware virtualization)"
        )
    return "hardware KVM available"


def report() -> dict[str, Availability]:
    """Every backend LuminaGuard knows of, with whether it can run here and why."""
    found = {name: make().availability() for name, make in BACKENDS.items()}
    for name in ("qemu", "firecracker"):  # the VM backends: say what KVM is here
        available = found[name]
        found[name] = Availability(available.usable, f"{available.detail}; {_kvm()}")
    return found

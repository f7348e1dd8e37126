"""The backends by name, and what this machine can run (``luminaguard doctor``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from luminaguard.errors import UsageError
from luminaguard.hypervisor.base import Availability, Backend
from luminaguard.hypervisor.gvisor import GvisorBackend
from luminaguard.hypervisor.qemu import QemuBackend
from luminaguard.hypervisor.registry_kvm import hardware_kvm
from luminaguard.hypervisor.sandbox import SandboxBackend

DEFAULT = "sandbox"

#: Backends this version implements.
BACKENDS: dict[str, Callable[[], Backend]] = {
    "sandbox": SandboxBackend,
    "gvisor": GvisorBackend,
    "qemu": QemuBackend,
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
    if found["qemu"].usable:
        found["qemu"] = Availability(True, f"{found['qemu'].detail}; {_kvm()}")
    binary = "found" if shutil.which("firecracker") else "not found"
    found["firecracker"] = Availability(
        False,
        f"API client only, backend not yet (micro-VM issue); firecracker binary {binary}; {_kvm()}",
    )
    return found

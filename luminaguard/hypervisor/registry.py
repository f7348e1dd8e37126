"""The backends by name, and what this machine can run (``luminaguard doctor``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from luminaguard.errors import UsageError
from luminaguard.hypervisor.base import Availability, Backend
from luminaguard.hypervisor.sandbox import SandboxBackend

DEFAULT = "sandbox"

#: Backends this version implements.
BACKENDS: dict[str, Callable[[], Backend]] = {"sandbox": SandboxBackend}


def backend(name: str) -> Backend:
    """A new backend by name, or a UsageError listing the known ones."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r} (available: {', '.join(sorted(BACKENDS))})")
    return BACKENDS[name]()


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def hardware_kvm() -> bool:
    """Whether /dev/kvm is backed by hardware virtualization (vmx or svm)."""
    return os.path.exists("/dev/kvm") and bool(_cpu_flags() & {"vmx", "svm"})


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
    planned = "not in this version yet (micro-VM issue)"
    qemu = shutil.which("qemu-system-x86_64")
    found["qemu"] = Availability(
        False, f"{planned}; qemu {'found' if qemu else 'not installed'}; {_kvm()}"
    )
    binary = "found" if shutil.which("firecracker") else "not found"
    found["firecracker"] = Availability(
        False,
        f"API client only, backend not yet (micro-VM issue); firecracker binary {binary}; {_kvm()}",
    )
    found["gvisor"] = Availability(
        False, f"{planned}; runsc {'found' if shutil.which('runsc') else 'not installed'}"
    )
    return found

"""Whether this machine has hardware virtualization behind /dev/kvm."""

from __future__ import annotations

import os


def cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo."""
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
    return os.path.exists("/dev/kvm") and bool(cpu_flags() & {"vmx", "svm"})

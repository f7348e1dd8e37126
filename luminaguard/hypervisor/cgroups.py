"""Memory and process-count limits through cgroups (v1 or v2), where this machine allows.

When no writable cgroup hierarchy exists the sandbox falls back to rlimits
(address space and process count), which ``luminaguard doctor`` reports.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path(os.environ.get("LUMINAGUARD_CGROUP_ROOT", "/sys/fs/cgroup"))
PARENT = "luminaguard"


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _v2_controllers() -> set[str]:
    try:
        return set((CGROUP_ROOT / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def hierarchy() -> str:
    """``v2``, ``v1`` or ``none``: which cgroup hierarchy can enforce limits here."""
    if {"memory", "pids"} <= _v2_controllers() and _writable(CGROUP_ROOT):
        return "v2"
    if _writable(CGROUP_ROOT / "memory") and _writable(CGROUP_ROOT / "pids"):
        return "v1"
    return "none"


@dataclass
class CgroupLimits:
    """One sandbox's cgroups: created with limits, joined by the helper, removed after."""

    name: str
    memory_bytes: int
    pids: int
    kind: str = field(default_factory=hierarchy)
    dirs: list[Path] = field(default_factory=list)

    def create(self) -> list[str]:
        """Create the cgroups; return the ``cgroup.procs`` files the helper must join."""
        if self.kind == "v2":
            self._create_v2()
        elif self.kind == "v1":
            self._create_v1()
        return [str(d / "cgroup.procs") for d in self.dirs]

    def _create_v2(self) -> None:
        parent = CGROUP_ROOT / PARENT
        parent.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            (CGROUP_ROOT / "cgroup.subtree_control").write_text("+memory +pids")
            (parent / "cgroup.subtree_control").write_text("+memory +pids")
        group = parent / self.name
        group.mkdir(exist_ok=True)
        (group / "memory.max").write_text(str(self.memory_bytes))
        with contextlib.suppress(OSError):
            (group / "memory.swap.max").write_text("0")
        (group / "pids.max").write_text(str(self.pids))
        self.dirs = [group]

    def _create_v1(self) -> None:
        memory = CGROUP_ROOT / "memory" / PARENT / self.name
        pids = CGROUP_ROOT / "pids" / PARENT / self.name
        memory.mkdir(parents=True, exist_ok=True)
        pids.mkdir(parents=True, exist_ok=True)
        (memory / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
        with contextlib.suppress(OSError):
            (memory / "memory.memsw.limit_in_bytes").write_text(str(self.memory_bytes))
        (pids / "pids.max").write_text(str(self.pids))
        self.dirs = [memory, pids]

    def out_of_memory(self) -> bool:
        """Whether the memory limit was hit (a process was killed or an allocation failed)."""
        for directory in self.dirs:
            for name in ("memory.events", "memory.oom_control"):  # v2, v1
                with contextlib.suppress(OSError, ValueError):
                    fields = (directory / name).read_text().split()
                    counts = dict(zip(fields[::2], fields[1::2], strict=False))
                    if int(counts.get("oom_kill", 0)) > 0:
                        return True
        return False

    def remove(self) -> None:
        """Kill what is left in the cgroups and remove them."""
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                kill = directory / "cgroup.kill"
                if kill.exists():
                    kill.write_text("1")
            with contextlib.suppress(OSError):
                directory.rmdir()
        self.dirs = []

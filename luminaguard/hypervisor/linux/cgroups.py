"""Memory, process-count and CPU limits through cgroups (v1 or v2), where this machine allows.

When no writable cgroup hierarchy exists the sandbox falls back to rlimits
(address space and process count), which ``luminaguard doctor`` reports. The CPU
quota (``cpu.max`` on v2, ``cpu.cfs_quota_us`` on v1) needs the cpu controller;
where it is missing, ``cpu_quota()`` says so and no quota applies.

A sandbox's processes are killed through its cgroups (``kill``): ``cgroup.kill`` on v2,
each member on v1. ``remove`` waits for the members to be gone before removing the
cgroups: a process has closed its pipes (and its waiter has seen it end) a moment
before the kernel takes it out of its cgroups, and a cgroup still holding a process
cannot be removed.

Each cgroup's name ends in its owner's mark, ``@PID.START.NS`` (the creating process's
pid, its start time in clock ticks from ``/proc/PID/stat``, and its PID namespace): a
runner killed by SIGKILL removes nothing, and ``sweep`` removes the cgroups whose owner
is dead (killing what is left in them), never those of a live process, whose sandbox may
be about to join them, nor those made in another PID namespace (another container
sharing the hierarchy), whose pids mean nothing here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path(os.environ.get("LUMINAGUARD_CGROUP_ROOT", "/sys/fs/cgroup"))
PARENT = "luminaguard"
PERIOD_US = 100_000
#: where a process writes ``0`` to join a cgroup: on v1, ``tasks`` moves the writing thread
#: alone, which the kernel does without the global lock that moving a whole process takes
#: (``cgroup.procs``), and that lock waits for an RCU grace period (about 10 ms here) once
#: the system has been idle. The joiners (a sandbox's PID 1, gVisor's pre-exec hook) have
#: one thread, and what they fork inherits its cgroups. v2 has no such file: ``cgroup.procs``.
JOIN_FILE = {"v1": "tasks", "v2": "cgroup.procs"}
#: how long ``remove`` waits for the cgroups' last processes to finish exiting, seconds
EXIT_WAIT = 10.0


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


def cpu_quota() -> bool:
    """Whether a CPU quota can be enforced here (the cpu controller is writable)."""
    kind = hierarchy()
    if kind == "v2":
        return "cpu" in _v2_controllers()
    return kind == "v1" and _writable(CGROUP_ROOT / "cpu")


def _members(directory: Path) -> set[int]:
    with contextlib.suppress(OSError, ValueError):
        return {int(pid) for pid in (directory / "cgroup.procs").read_text().split()}
    return set()


def _kill_member(directory: Path, pid: int) -> None:
    """SIGKILL ``pid`` if it is (still) in ``directory``: a pidfd, so a reused pid is safe."""
    try:
        handle = os.pidfd_open(pid)
    except OSError:  # gone already
        return
    try:
        if pid in _members(directory):  # the pidfd names the process that is a member
            signal.pidfd_send_signal(handle, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(handle)


def _start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None when there is no such process."""
    try:
        stat = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return None
    # "PID (COMM) STATE PPID ...": the command may hold spaces and parentheses
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of proc(5), the 20th after the command
    except (IndexError, ValueError):
        return None


def _pid_namespace() -> int:
    return os.stat("/proc/self/ns/pid").st_ino


def owner_mark() -> str:
    """``@PID.START.NS`` of this process: the end of its cgroups' names."""
    pid = os.getpid()
    return f"@{pid}.{_start_time(pid)}.{_pid_namespace()}"


def owner_of(name: str) -> tuple[int, int, int] | None:
    """The (pid, start time, PID namespace) a cgroup's name ends with; None if unmarked."""
    _, at, mark = name.rpartition("@")
    fields = mark.split(".")
    if not at or len(fields) != 3 or not all(field.isdigit() for field in fields):
        return None
    return int(fields[0]), int(fields[1]), int(fields[2])


def _dead(owner: tuple[int, int, int]) -> bool:
    """Whether the owner is dead: its pid names no process started when it did.

    A reused pid names a process started later. Another PID namespace's owner is not
    judged: its pid means nothing here.
    """
    pid, start, namespace = owner
    return namespace == _pid_namespace() and _start_time(pid) != start


def parents() -> list[Path]:
    """The folders holding luminaguard's cgroups, one per hierarchy in use here."""
    kind = hierarchy()
    if kind == "v2":
        return [CGROUP_ROOT / PARENT]
    if kind == "v1":
        return [CGROUP_ROOT / c / PARENT for c in ("memory", "pids", "cpu", "cpuacct")]
    return []


def orphans() -> list[Path]:
    """The cgroups whose owner is dead (unmarked ones, of older versions, are left alone)."""
    found: list[Path] = []
    for parent in parents():
        with contextlib.suppress(OSError):
            for entry in os.scandir(parent):
                owner = owner_of(entry.name)
                if entry.is_dir(follow_symlinks=False) and owner and _dead(owner):
                    found.append(Path(entry.path))
    return found


def sweep() -> list[Path]:
    """Kill what is left in the cgroups of dead owners and remove them; return those removed.

    Blocks (up to EXIT_WAIT for cgroups whose processes are slow to die).
    """
    removed: list[Path] = []
    for directory in orphans():
        CgroupLimits(directory.name, 0, 0, dirs=[directory]).remove()
        if not directory.exists():
            removed.append(directory)
    return removed


def join(files: list[str]) -> None:
    """Move the calling thread, which must be its process's only one, into the cgroups."""
    for path in files:
        with open(path, "w") as f:
            f.write("0")


def _quota(cpus: float) -> int:
    return max(1000, round(cpus * PERIOD_US))  # the kernel's smallest quota is 1 ms


@dataclass
class CgroupLimits:
    """One sandbox's cgroups: created with limits, joined by the sandbox, removed after."""

    name: str
    memory_bytes: int
    pids: int
    cpus: float | None = None  # cores' worth of CPU time per period; None: no quota
    kind: str = field(default_factory=hierarchy)
    dirs: list[Path] = field(default_factory=list)

    def create(self) -> list[str]:
        """Create the cgroups; return the files in which a process writes ``0`` to join them.

        Their name is ``name`` and this process's mark (``owner_mark``). The files are
        ``tasks`` on v1 and ``cgroup.procs`` on v2 (see ``join``).
        """
        if owner_of(self.name) is None:
            self.name += owner_mark()
        if self.kind == "v2":
            self._create_v2()
        elif self.kind == "v1":
            self._create_v1()
        return [str(d / JOIN_FILE[self.kind]) for d in self.dirs]

    def _create_v2(self) -> None:
        parent = CGROUP_ROOT / PARENT
        parent.mkdir(exist_ok=True)
        cpu = self.cpus is not None and "cpu" in _v2_controllers()
        controllers = "+memory +pids" + (" +cpu" if cpu else "")
        with contextlib.suppress(OSError):
            (CGROUP_ROOT / "cgroup.subtree_control").write_text(controllers)
            (parent / "cgroup.subtree_control").write_text(controllers)
        group = parent / self.name
        group.mkdir(exist_ok=True)
        self.dirs = [group]
        (group / "memory.max").write_text(str(self.memory_bytes))
        with contextlib.suppress(OSError):
            (group / "memory.swap.max").write_text("0")
        (group / "pids.max").write_text(str(self.pids))
        if cpu and self.cpus is not None:
            (group / "cpu.max").write_text(f"{_quota(self.cpus)} {PERIOD_US}")

    def _create_v1(self) -> None:
        memory = CGROUP_ROOT / "memory" / PARENT / self.name
        pids = CGROUP_ROOT / "pids" / PARENT / self.name
        memory.mkdir(parents=True, exist_ok=True)
        self.dirs = [memory]
        pids.mkdir(parents=True, exist_ok=True)
        self.dirs.append(pids)
        (memory / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
        with contextlib.suppress(OSError):
            (memory / "memory.memsw.limit_in_bytes").write_text(str(self.memory_bytes))
        (pids / "pids.max").write_text(str(self.pids))
        if self.cpus is not None and _writable(CGROUP_ROOT / "cpu"):
            self._create_v1_cpu(self.cpus)

    def _create_v1_cpu(self, cpus: float) -> None:
        cpu = CGROUP_ROOT / "cpu" / PARENT / self.name
        cpu.mkdir(parents=True, exist_ok=True)
        self.dirs.append(cpu)
        (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(_quota(cpus)))
        # CPU time used, where cpuacct is a hierarchy of its own (else it is cpu's)
        accounting = CGROUP_ROOT / "cpuacct"
        if _writable(accounting) and accounting.resolve() != (CGROUP_ROOT / "cpu").resolve():
            group = accounting / PARENT / self.name
            group.mkdir(parents=True, exist_ok=True)
            self.dirs.append(group)

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by everything in the cgroups, when this machine counts it."""
        for directory in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                return int((directory / "cpuacct.usage").read_text()) / 1e9  # v1
            with contextlib.suppress(OSError, ValueError, StopIteration):
                lines = (directory / "cpu.stat").read_text().splitlines()
                usage = next(line for line in lines if line.startswith("usage_usec "))
                return int(usage.split()[1]) / 1e6  # v2
        return None

    def out_of_memory(self) -> bool:
        """Whether the memory limit was hit (a process was killed or an allocation failed)."""
        name = "memory.events" if self.kind == "v2" else "memory.oom_control"
        for directory in self.dirs[:1]:  # the memory controller's, first on either hierarchy
            with contextlib.suppress(OSError, ValueError):
                fields = (directory / name).read_text().split()
                counts = dict(zip(fields[::2], fields[1::2], strict=False))
                return int(counts.get("oom_kill", 0)) > 0
        return False

    def members(self) -> set[int]:
        """The pids of the processes in the cgroups."""
        found: set[int] = set()
        for directory in self.dirs:
            found |= _members(directory)
        return found

    def kill(self) -> None:
        """SIGKILL every process in the cgroups (``cgroup.kill`` where the kernel has it)."""
        for directory in self.dirs if self.kind == "v2" else []:
            with contextlib.suppress(OSError):
                (directory / "cgroup.kill").write_text("1")
                return  # the kernel kills every member, and those being forked
        signalled: set[int] = set()
        for directory in self.dirs:  # v1: one by one, until a look finds no new member
            while fresh := _members(directory) - signalled:
                for pid in fresh:
                    _kill_member(directory, pid)
                signalled |= fresh

    def try_remove(self) -> bool:
        """Remove the cgroups if nothing is left in them; whether all are gone. Never blocks.

        A sandbox's cgroups are empty once its PID 1 has been reaped: the kernel reaps
        the rest of a PID namespace before its PID 1.
        """
        while self.dirs:
            try:
                self.dirs[0].rmdir()
            except FileNotFoundError:
                pass
            except OSError:  # EBUSY: a process is still in it
                return False
            del self.dirs[0]
        return True

    def remove(self) -> None:
        """Kill what is left in the cgroups, wait (EXIT_WAIT at most) until empty, remove them.

        Blocks: call it from a thread in async code.
        """
        deadline = time.monotonic() + EXIT_WAIT
        self.kill()
        while self.members() and time.monotonic() < deadline:
            time.sleep(0.01)
            self.kill()  # a child forked while the last look was taken
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                directory.rmdir()
        self.dirs = []

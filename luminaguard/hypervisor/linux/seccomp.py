"""The sandbox's seccomp filter: a classic BPF program built here, installed by the helper.

Standard library only (``sandbox.helper`` imports it before the pivot). The filter
denies with EPERM what an unprivileged process could use to leave or widen its
box, or to reach the kernel's less-trodden paths: keyrings, new namespaces
(``unshare``, ``setns``, ``clone`` with a namespace flag), mounts, ``ptrace`` and
``process_vm_*``, ``bpf``, ``perf_event_open``, ``userfaultfd``, kexec, kernel
modules and ``open_by_handle_at``. ``clone3`` passes its flags in memory, where a
filter cannot read them: it fails with ENOSYS, so C libraries fall back to
``clone``, whose flags are checked. A system call made through another
architecture's entry (i386 on x86_64, x32, arm32 on aarch64) kills the process.
"""

from __future__ import annotations

import ctypes
import struct

TYPE_CHECKING = False  # importing typing or collections.abc costs spawn time
if TYPE_CHECKING:
    from collections.abc import Callable

# BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h)
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
RET_KILL_PROCESS, RET_ERRNO, RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
EPERM, ENOSYS = 1, 38
SECCOMP_MODE_FILTER = 2
PR_SET_SECCOMP = 22

#: Offsets in ``struct seccomp_data``: nr, arch, then the arguments (little-endian low word).
NR, ARCH, ARG0_LOW = 0, 4, 16
X32_SYSCALL_BIT = 0x40000000

#: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
NAMESPACE_FLAGS |= 0x20000000 | 0x40000000

#: The first system call number this filter does not know (Linux 6.15's open_tree_attr
#: is 467): the same on x86_64 and aarch64, whose new calls share numbers.
FIRST_UNKNOWN = 468

DENIED = (
    *("keyctl", "add_key", "request_key"),
    *("unshare", "setns"),
    *("mount", "umount2", "pivot_root", "move_mount", "fsopen", "fsconfig", "fsmount"),
    *("fspick", "open_tree", "open_tree_attr", "mount_setattr"),
    *("ptrace", "process_vm_readv", "process_vm_writev"),
    *("bpf", "perf_event_open", "userfaultfd"),
    *("kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module"),
    "open_by_handle_at",
)


class Arch:
    """One architecture: its AUDIT_ARCH value and its system call numbers."""

    def __init__(self, audit: int, numbers: dict[str, int], x32: bool = False) -> None:
        self.audit = audit
        self.numbers = numbers
        self.x32 = x32  # whether numbers with X32_SYSCALL_BIT reach another ABI


X86_64 = Arch(
    0xC000003E,
    {
        "keyctl": 250, "add_key": 248, "request_key": 249, "unshare": 272, "setns": 308,
        "mount": 165, "umount2": 166, "pivot_root": 155, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "open_tree": 428, "open_tree_attr": 467,
        "mount_setattr": 442, "ptrace": 101, "process_vm_readv": 310,
        "process_vm_writev": 311, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "open_by_handle_at": 304, "clone": 56, "clone3": 435,
    },
    x32=True,
)  # fmt: skip

AARCH64 = Arch(
    0xC00000B7,
    {
        "keyctl": 219, "add_key": 217, "request_key": 218, "unshare": 97, "setns": 268,
        "mount": 40, "umount2": 39, "pivot_root": 41, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "open_tree": 428, "open_tree_attr": 467,
        "mount_setattr": 442, "ptrace": 117, "process_vm_readv": 270,
        "process_vm_writev": 271, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
        "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "open_by_handle_at": 265, "clone": 220, "clone3": 435,
    },
)  # fmt: skip

ARCHES = {"x86_64": X86_64, "aarch64": AARCH64}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(machine: str) -> bytes:
    """The filter for ``machine`` (``os.uname().machine``) as ``struct sock_filter``s."""
    arch = ARCHES.get(machine)
    if arch is None:
        raise ValueError(f"no seccomp filter for architecture {machine}")
    numbers = arch.numbers
    checks = [(JGE_K, X32_SYSCALL_BIT, "kill")] if arch.x32 else []
    # a system call newer than this table is unknown to the filter: ENOSYS, as an older
    # kernel would answer (the next mount call must not slip through as open_tree_attr did)
    checks.append((JGE_K, FIRST_UNKNOWN, "enosys"))
    checks += [(JEQ_K, numbers["clone3"], "enosys"), (JEQ_K, numbers["clone"], "clone")]
    checks += [(JEQ_K, numbers[name], "eperm") for name in DENIED]
    # 0: load arch; 1: foreign -> kill; 2: load nr; the checks; allow; then the labels
    start = 3 + len(checks) + 1
    labels = {"clone": start, "allow": start + 2, "eperm": start + 3, "enosys": start + 4}
    labels["kill"] = start + 5
    out = [_insn(LD_W_ABS, ARCH), _insn(JEQ_K, arch.audit, 0, labels["kill"] - 2)]
    out.append(_insn(LD_W_ABS, NR))
    for code, k, label in checks:
        out.append(_insn(code, k, labels[label] - len(out) - 1, 0))
    out.append(_insn(RET_K, RET_ALLOW))
    out.append(_insn(LD_W_ABS, ARG0_LOW))  # clone: its flags
    jump = len(out) + 1
    out.append(_insn(JSET_K, NAMESPACE_FLAGS, labels["eperm"] - jump, labels["allow"] - jump))
    out += [_insn(RET_K, RET_ALLOW), _insn(RET_K, RET_ERRNO | EPERM)]
    out += [_insn(RET_K, RET_ERRNO | ENOSYS), _insn(RET_K, RET_KILL_PROCESS)]
    return b"".join(out)


def install(program_bytes: bytes, prctl: Callable[..., int]) -> int:
    """Install a filter on the calling thread (no_new_privs must be set); 0 on success.

    ``prctl`` is libc's, loaded with ``use_errno``; the caller reads errno on failure.
    """
    buffer = ctypes.create_string_buffer(program_bytes, len(program_bytes))
    fprog = struct.pack("@HP", len(program_bytes) // 8, ctypes.addressof(buffer))
    header = ctypes.create_string_buffer(fprog, len(fprog))
    address = ctypes.c_ulong(ctypes.addressof(header))
    return int(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, address, 0, 0))

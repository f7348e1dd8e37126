"""The seccomp program, run in a small BPF interpreter for each architecture it knows."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from luminaguard.hypervisor.linux import seccomp

HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}
ERRNO, KILL, ALLOW = seccomp.RET_ERRNO, seccomp.RET_KILL_PROCESS, seccomp.RET_ALLOW


def run(program: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    """What the filter returns for one system call (classic BPF, the opcodes it uses)."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    insns = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == seccomp.LD_W_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == seccomp.RET_K:
            return k
        else:
            taken = {
                seccomp.JEQ_K: acc == k,
                seccomp.JGE_K: acc >= k,
                seccomp.JSET_K: bool(acc & k),
            }[code]
            pc += jt if taken else jf


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_the_filter_denies_what_it_lists_and_allows_the_rest(machine: str) -> None:
    arch = seccomp.ARCHES[machine]
    program = seccomp.program(machine)
    numbers = arch.numbers
    for name in seccomp.DENIED:
        assert run(program, numbers[name], arch.audit) == ERRNO | seccomp.EPERM, name
    assert run(program, numbers["clone3"], arch.audit) == ERRNO | seccomp.ENOSYS
    denied = set(numbers.values())
    for nr in range(0, 460):
        if nr not in denied:
            assert run(program, nr, arch.audit) == ALLOW, nr


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_clone_is_checked_on_its_namespace_flags(machine: str) -> None:
    arch = seccomp.ARCHES[machine]
    program, clone = seccomp.program(machine), arch.numbers["clone"]
    thread = 0x003D0F00  # what glibc passes for pthread_create
    assert run(program, clone, arch.audit, thread) == ALLOW
    assert run(program, clone, arch.audit, 17) == ALLOW  # fork: SIGCHLD
    for bit in range(32):
        flag = 1 << bit
        if seccomp.NAMESPACE_FLAGS & flag:
            assert run(program, clone, arch.audit, flag | 17) == ERRNO | seccomp.EPERM, hex(flag)


def test_another_architecture_or_abi_is_killed() -> None:
    program = seccomp.program("x86_64")
    assert run(program, 39, 0x40000003) == KILL  # i386 entry
    assert run(program, 0x40000000 | 39, seccomp.X86_64.audit) == KILL  # x32
    arm = seccomp.program("aarch64")
    assert run(arm, 20, 0x40000028) == KILL  # arm32 entry


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_the_numbers_are_the_kernels(machine: str) -> None:
    header = HEADERS[machine]
    if not header.exists():
        pytest.skip(f"{header} not installed")
    text = header.read_text()
    for name, number in seccomp.ARCHES[machine].numbers.items():
        found = re.search(rf"#define __NR(?:3264)?_{name}\s+(\d+)", text)
        if found is None and number >= 467:
            continue  # newer than these headers (open_tree_attr: Linux 6.15)
        assert found is not None and int(found.group(1)) == number, name


def test_an_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="no seccomp filter for architecture riscv64"):
        seccomp.program("riscv64")


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_a_system_call_newer_than_the_table_is_enosys(machine: str) -> None:
    program = seccomp.program(machine)
    audit = seccomp.ARCHES[machine].audit
    assert run(program, seccomp.FIRST_UNKNOWN, audit) == ERRNO | seccomp.ENOSYS
    assert run(program, seccomp.FIRST_UNKNOWN + 40, audit) == ERRNO | seccomp.ENOSYS
    newest = seccomp.ARCHES[machine].numbers["open_tree_attr"]
    assert run(program, newest, audit) == ERRNO | seccomp.EPERM

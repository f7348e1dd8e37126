"""The sandbox gives away nothing: no new namespaces, no mounts, no keyrings (issue #10, 8).

Each test runs the attack inside the namespace sandbox and inside gVisor.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from luminaguard.hypervisor.linux.seccomp import ARCHES
from tests.security.conftest import Run

KEYCTL = ARCHES[os.uname().machine].numbers["keyctl"]
ADD_KEY = ARCHES[os.uname().machine].numbers["add_key"]
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CLEAR, KEYCTL_SEARCH, KEYCTL_READ = 1, 7, 10, 11
SESSION_KEYRING = -3

libc = ctypes.CDLL(None, use_errno=True)

#: inside the sandbox: find the key in the session keyring, print its payload, clear it
STEAL_KEY = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
key = libc.syscall({KEYCTL}, {KEYCTL_SEARCH}, {SESSION_KEYRING}, b"user", b"DESCRIPTION", 0)
print("search", key, ctypes.get_errno())
if key > 0:
    buffer = ctypes.create_string_buffer(256)
    size = libc.syscall({KEYCTL}, {KEYCTL_READ}, key, buffer, 256)
    print("payload", buffer.raw[:max(size, 0)].decode())
print("clear", libc.syscall({KEYCTL}, {KEYCTL_CLEAR}, {SESSION_KEYRING}), ctypes.get_errno())
import os
if os.path.exists("/proc/keys"):
    print(open("/proc/keys").read())
"""

#: inside the sandbox: the namespace and mount system calls, straight through libc
UNSHARE_AND_MOUNT = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for name, flag in (("user", 0x10000000), ("mount", 0x00020000), ("net", 0x40000000)):
    result = libc.unshare(flag)
    print("unshare", name, result, ctypes.get_errno())
result = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
print("mount", result, ctypes.get_errno())
result = libc.syscall(CLONE, 0x10000000 | 17, 0, 0, 0, 0)
if result == 0:
    os._exit(0)
print("clone", result, ctypes.get_errno())
"""


def _search(description: bytes) -> int:
    return int(libc.syscall(KEYCTL, KEYCTL_SEARCH, SESSION_KEYRING, b"user", description, 0))


def test_the_runners_session_keyring_is_out_of_reach(
    tmp_path: Path,
    run_in_sandbox: Run,
) -> None:
    """Attack: read, then clear, the runner's session keyring from inside the sandbox.

    Before the fix the sandbox inherited (and possessed) the runner's session keyring:
    it read the key's payload and cleared the keyring. Fixed by ca2f630 "sandbox:
    seccomp filter (...), a fresh session keyring, ..." (gVisor: its own keyrings).
    """
    # the runner (this process) gets a session keyring of its own, holding one key
    assert libc.syscall(KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None) > 0
    description = f"luminaguard-test-{os.getpid()}".encode()
    payload = b"runner-secret-payload"
    key = libc.syscall(ADD_KEY, b"user", description, payload, len(payload), SESSION_KEYRING)
    assert key > 0, os.strerror(ctypes.get_errno())
    assert _search(description) == key

    result = run_in_sandbox(
        tmp_path, f"python3 -c '{STEAL_KEY.replace('DESCRIPTION', description.decode())}'"
    )

    assert result.exit_code == 0, result.stderr
    assert "runner-secret-payload" not in result.stdout
    assert description.decode() not in result.stdout  # not even listed in /proc/keys
    assert _search(description) == key  # still there: the sandbox could not clear it


@pytest.mark.parametrize("command", ["unshare -Ur id -u", "unshare -m true", "unshare -n true"])
def test_no_nested_namespace_from_the_unshare_tool(
    tmp_path: Path,
    run_in_sandbox: Run,
    command: str,
) -> None:
    """Attack: ``unshare -Ur`` (a user namespace with every capability), ``-m``, ``-n``.

    Before the fix ``unshare -Ur`` printed 0: root with full capabilities in a nested
    user namespace, able to mount, in both backends. Fixed by ca2f630 "sandbox: seccomp
    filter (no namespaces, mounts, keyrings, ptrace, bpf...), ..." and, for gVisor,
    63ea4f6 "gvisor: the sandbox's seccomp filter as an OCI profile ...".
    """
    result = run_in_sandbox(tmp_path, command)
    assert result.exit_code != 0, result.stdout
    assert "Operation not permitted" in result.stderr


def test_no_namespace_or_mount_system_call(tmp_path: Path, run_in_sandbox: Run) -> None:
    """Attack: ``unshare(2)``, ``mount(2)`` and ``clone(CLONE_NEWUSER)`` through ctypes.

    Before the fix ``unshare(CLONE_NEWUSER)`` succeeded in both backends. Fixed by
    ca2f630 "sandbox: seccomp filter (...)" and 63ea4f6 "gvisor: the sandbox's seccomp
    filter as an OCI profile ...".
    """
    clone = ARCHES[os.uname().machine].numbers["clone"]
    script = UNSHARE_AND_MOUNT.replace("CLONE", str(clone))
    result = run_in_sandbox(tmp_path, f"python3 -c '{script}'")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5, result.stdout
    for line in lines:
        *_, code, errno = line.split()
        assert (code, errno) == ("-1", "1"), line  # EPERM, every one


I386_GETPID = """
int main(void) {
    long pid;
    __asm__ volatile("int $0x80" : "=a"(pid) : "a"(20L));  /* getpid, i386 numbering */
    return pid > 0 ? 0 : 3;
}
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64's other ABIs")
def test_no_system_call_through_another_abi(
    tmp_path: Path, run_in_sandbox: Run, backend_name: str
) -> None:
    """Attack: go around the filter through the i386 (``int 0x80``) or x32 entry points.

    A filter that checks numbers without the architecture is bypassed by the same call
    under another ABI's numbering. A guard of the filter of ca2f630 "sandbox: seccomp
    filter (...)" rather than an attack that worked before it (there was no filter to go
    around): the namespace sandbox kills such a process (SIGSYS); gVisor refuses the ABI.
    """
    x32 = "import ctypes; print(ctypes.CDLL(None).syscall(0x40000000 | 39))"  # getpid
    result = run_in_sandbox(tmp_path, f'python3 -c "{x32}"')
    if backend_name == "sandbox":
        assert result.exit_code == 128 + 31, result  # SIGSYS
    else:
        assert result.stdout.strip() == "-1", result
    compiler = shutil.which("cc")
    if compiler is None:
        return
    source, binary = tmp_path / "i386.c", tmp_path / "work" / "i386"
    source.write_text(I386_GETPID)
    binary.parent.mkdir(exist_ok=True)
    subprocess.run([compiler, "-O0", "-o", str(binary), str(source)], check=True)
    result = run_in_sandbox(tmp_path, "/work/i386")
    assert result.exit_code != 0, "the i386 getpid ran"
    if backend_name == "sandbox":
        assert result.exit_code == 128 + 31, result

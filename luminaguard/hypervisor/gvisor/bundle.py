"""The OCI bundle (``config.json``) that runs one command under gVisor.

The container sees what the namespace sandbox shows: host system folders
read-only, the agent's work folder read-write at ``/work``, a private ``/tmp``,
its own PID, IPC, UTS and (empty) network namespaces, the sandbox's own user, the
same seccomp filter (as an OCI profile), and a process limit that gVisor's kernel
enforces itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from luminaguard.hypervisor.base import BackendError, SandboxSpec
from luminaguard.hypervisor.linux import env as sandbox_env
from luminaguard.hypervisor.linux import seccomp
from luminaguard.hypervisor.linux.system import SYSTEM_DIRS
from luminaguard.nofollow import open_no_links


def _bind(source: str | Path, target: str, read_only: bool) -> dict[str, Any]:
    options = ["rbind", "nosuid", "nodev", "ro" if read_only else "rw"]
    return {"destination": target, "type": "bind", "source": str(source), "options": options}


def mounts(spec: SandboxSpec) -> list[dict[str, Any]]:
    """Every mount of the container, in the order gVisor must make them."""
    found: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=64m"]},
    ]
    found += [
        _bind(Path("/", name).resolve(), "/" + name, read_only=True)
        for name in SYSTEM_DIRS
        if os.path.isdir("/" + name)
    ]
    found.append(_bind(spec.workdir, "/work", read_only=False))
    found += [_bind(_without_links(m.source), m.target, m.read_only) for m in spec.mounts]
    return found


def _without_links(source: Path) -> Path:
    """``source``, refused when a part of it is a symbolic link (``nofollow``).

    A mount's source may lie below a folder a sandbox writes, where a step can replace a
    folder with a link to anywhere on the host. runsc opens the source by path, so this
    check and its open are apart in time; the namespace sandbox binds by descriptor.
    """
    try:
        os.close(open_no_links(str(source)))
    except OSError as exc:
        raise BackendError(f"mount source {source} passes through a symlink: {exc}") from exc
    return source


def _rlimit(kind: str, value: int) -> dict[str, Any]:
    return {"type": kind, "soft": value, "hard": value}


def seccomp_profile() -> dict[str, Any]:
    """The namespace sandbox's seccomp filter as an OCI profile (``runsc --oci-seccomp``).

    gVisor enforces it inside its own kernel; a foreign architecture cannot reach it.
    """
    flags = [1 << bit for bit in range(32) if seccomp.NAMESPACE_FLAGS & (1 << bit)]
    clone_rules = [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": seccomp.EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        }
        for flag in flags
    ]
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": list(seccomp.DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": seccomp.EPERM},
            # clone3 must fail with ENOSYS (C libraries then fall back to clone); runsc
            # before 2025 ignores errnoRet, but a TRACE with no tracer (ptrace is denied)
            # returns ENOSYS, in gVisor as in Linux
            {"names": ["clone3"], "action": "SCMP_ACT_TRACE"},
            *clone_rules,
        ],
    }


def config(spec: SandboxSpec, argv: list[str], env: dict[str, str], uid: int) -> dict[str, Any]:
    """The OCI runtime configuration for ``argv`` in ``spec``'s sandbox, run as ``uid``."""
    variables = sandbox_env.environment({**spec.env, **env})
    return {
        "ociVersion": "1.0.2",
        "process": {
            "args": argv,
            "cwd": "/work",
            "env": [f"{name}={value}" for name, value in variables.items()],
            "user": {"uid": uid, "gid": uid},
            "noNewPrivileges": True,
            "rlimits": [
                _rlimit("RLIMIT_NPROC", spec.pids),
                _rlimit("RLIMIT_CORE", 0),
            ],
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "luminaguard",
        "mounts": mounts(spec),
        "linux": {
            "namespaces": [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")],
            "seccomp": seccomp_profile(),
        },
    }


def write(bundle: Path, spec: SandboxSpec, argv: list[str], env: dict[str, str], uid: int) -> None:
    """Write ``bundle/config.json`` (the agent's secrets: readable by root alone) and a root."""
    bundle.mkdir(mode=0o700, parents=True, exist_ok=True)
    (bundle / "rootfs").mkdir(exist_ok=True)
    text = json.dumps(config(spec, argv, env, uid), indent=1)
    descriptor = os.open(bundle / "config.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        f.write(text)

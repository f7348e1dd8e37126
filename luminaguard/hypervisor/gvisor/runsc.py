"""Finding and driving the ``runsc`` binary (gVisor's OCI runtime).

Debian 12's runsc (2022-12-19) fails ``statx`` with ``AT_NO_AUTOMOUNT`` (EINVAL), so
``ls`` and most coreutils cannot stat anything in its sandboxes; LuminaGuard needs a
runsc from 2023 or later. ``scripts/install-runsc.sh`` installs Debian 13's into
``/opt/luminaguard/bin`` when the system's is older.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from luminaguard.process import alive

OLDEST = 20230101
CANDIDATES = ("/opt/luminaguard/bin/runsc", "runsc")
FLAGS = ("--network=none", "--ignore-cgroups", "--oci-seccomp")


def _version(binary: str) -> int | None:
    try:
        shown = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return None
    found = re.search(r"(\d{8})", shown)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Runsc:
    """One runsc binary, its release date (YYYYMMDD) and the state folder it keeps."""

    binary: str
    version: int
    state: Path = Path("/run/luminaguard/runsc")

    def under(self, state: Path) -> Runsc:
        """The same binary keeping container state in ``state``."""
        return replace(self, state=state)

    def _argv(self, *args: str) -> list[str]:
        return [self.binary, f"--root={self.state}", *FLAGS, *args]

    def _quietly(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._argv(*args), capture_output=True, text=True, timeout=30, check=False
        )

    def container_id(self) -> str:
        """A new container id naming this runner's pid (see ``reap_orphans``)."""
        return f"lg-{os.getpid()}-{uuid.uuid4().hex[:10]}"

    def run_argv(self, container: str, bundle: Path, created: Path | None = None) -> list[str]:
        """The command that creates, starts and waits for ``container`` from ``bundle``.

        ``created``: where runsc writes the sandbox's pid once the sandbox has started
        and the container is created, before its command starts (``--pid-file``). The
        state folder is root's alone: a container's state holds its environment.
        """
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state.chmod(0o700)
        pid_file = [f"--pid-file={created}"] if created is not None else []
        return self._argv("run", f"--bundle={bundle}", *pid_file, container)

    def kill(self, container: str) -> None:
        """SIGKILL every process of ``container`` (a container already gone is fine)."""
        self._quietly("kill", "--all", container, "KILL")

    def delete(self, container: str) -> None:
        """Remove ``container`` and its state, killing it first if it still runs."""
        self._quietly("delete", "--force", container)

    def containers(self) -> list[str]:
        """The ids of every container in the state folder."""
        if not self.state.is_dir():
            return []
        return self._quietly("list", "--quiet").stdout.split()

    def reap_orphans(self) -> list[str]:
        """Delete the containers whose runner has died; return their ids."""
        reaped = []
        for container in self.containers():
            owner = re.fullmatch(r"lg-(\d+)-\w+", container)
            if owner and not alive(int(owner.group(1))):
                self.delete(container)
                reaped.append(container)
        return reaped


@functools.cache
def find_runsc() -> Runsc | str:
    """The newest usable runsc here, or one line saying why there is none."""
    explicit = os.environ.get("LUMINAGUARD_RUNSC")
    seen = []
    for candidate in ([explicit] if explicit else []) + list(CANDIDATES):
        binary = shutil.which(candidate)
        if binary is None:
            continue
        version = _version(binary)
        if version is not None and version >= OLDEST:
            return Runsc(binary, version)
        seen.append(f"{binary} ({version or 'unknown version'})")
    if not seen:
        return "runsc not installed (scripts/install-runsc.sh installs it)"
    return (
        f"runsc too old: {', '.join(seen)}; need {OLDEST} or later "
        "(older ones fail statx); scripts/install-runsc.sh installs one"
    )

"""Running the ``git`` executable: an argv list, a clean environment, a timeout.

Git reads no system or global configuration (``GIT_CONFIG_NOSYSTEM``,
``GIT_CONFIG_GLOBAL=/dev/null``) and never prompts (``GIT_TERMINAL_PROMPT=0``, ssh in
batch mode). Only a few variables of the caller's environment pass (``PATH``,
``HOME``, the ssh agent, proxies, CA files). ``file://`` and local paths are allowed
only for a local source; ``ext::`` never. What git writes to stderr ends up in a
``SourceError``: its last lines, with the URL's credentials redacted.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from luminaguard.gitops.snapshot import SourceError
from luminaguard.gitops.urls import GitUrl, redact_text

log = logging.getLogger("luminaguard.gitops")

#: Variables of the caller's environment git and ssh may see.
PASSED = (
    "PATH",
    "HOME",
    "SSH_AUTH_SOCK",
    "GIT_SSH_COMMAND",
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "no_proxy",
    "NO_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
)
STDERR_LINES = 5


def environment() -> dict[str, str]:
    """The environment git runs in (read from ``os.environ`` at each call)."""
    env = {name: os.environ[name] for name in PASSED if name in os.environ}
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        LC_ALL="C",
    )
    return env


def executable(env: dict[str, str]) -> str:
    """The path of ``git`` on ``env``'s PATH; ``SourceError`` when there is none."""
    found = shutil.which("git", path=env.get("PATH", ""))
    if found is None:
        raise SourceError(f"git is not installed: no git on PATH ({env.get('PATH', '')})")
    return found


@dataclass(frozen=True)
class Git:
    """Runs git for one source: its URL (for the protocol and redaction), a timeout."""

    url: GitUrl
    timeout: float

    def options(self) -> list[str]:
        """``-c`` options before every command: which protocols this source may use."""
        local = "always" if self.url.local else "never"
        return ["-c", f"protocol.file.allow={local}", "-c", "protocol.ext.allow=never"]

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        stdout: IO[bytes] | None = None,
        check: bool = True,
    ) -> str:
        """Run ``git ARGS``: its stdout (unless sent to ``stdout``).

        ``SourceError`` when git is missing, times out, or (with ``check``) fails.
        """
        env = environment()
        argv = [executable(env), *self.options(), *args]
        log.debug("git %s (%s)", args[0], self.url.shown)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout or subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a timeout kills git's helpers (ssh, https) too
            )
        except FileNotFoundError as exc:
            raise SourceError(f"git is not installed: {exc.strerror}") from None
        out, err = self._wait(proc, args[0])
        if check and proc.returncode != 0:
            raise SourceError(self._failure(args[0], err))
        return (out or b"").decode("utf-8", "replace")

    def _wait(self, proc: subprocess.Popen[bytes], command: str) -> tuple[bytes, bytes]:
        try:
            return proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise SourceError(
                f"git {command} of {self.url.shown} timed out after {self.timeout:g}s"
            ) from None

    def _failure(self, command: str, stderr: bytes) -> str:
        text = redact_text(stderr.decode("utf-8", "replace"), self.url)
        lines = [line for line in text.strip().splitlines() if line.strip()][-STDERR_LINES:]
        said = ("\n  " + "\n  ".join(lines)) if lines else " (git said nothing)"
        return f"git {command} of {self.url.shown} failed:{said}"

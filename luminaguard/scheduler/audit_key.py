"""``AuditKey``: the secret that keys the audit chain's HMACs.

By default the key is ``audit.key`` in the state folder, created (0600) with the state;
``--audit-key FILE`` names a key kept elsewhere, out of reach of whoever can edit the
state folder. Without the key nobody can write a record, or a head, that verifies.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from luminaguard.errors import UsageError
from luminaguard.scheduler.private import FILE_MODE, make_private, write_all

KEY_FILE = "audit.key"
MIN_BYTES = 32
PREFIX = "hmac-sha256:"
GENESIS = PREFIX + "0" * 64


class AuditKey:
    """An HMAC-SHA256 key and its public id (which tells keys apart without showing them)."""

    def __init__(self, secret: bytes, source: Path) -> None:
        if len(secret) < MIN_BYTES:
            raise UsageError(f"audit key {source} is too short: at least {MIN_BYTES} bytes")
        self._secret = secret
        self.source = source
        self.id = self.mac(b"luminaguard audit key id")[:16]

    def mac(self, body: bytes) -> str:
        """Hex HMAC-SHA256 of ``body``."""
        return hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    def record_hash(
        self,
        prev: str,
        seq: int,
        when: float,
        run_id: str,
        step_id: str | None,
        event: str,
        data: str,
    ) -> str:
        """The chained HMAC of one audit record: its content and the previous record's hash."""
        body = [prev, seq, repr(when), run_id, step_id, event, data]
        return PREFIX + self.mac(json.dumps(body, separators=(",", ":")).encode())

    @classmethod
    def read(cls, path: Path) -> AuditKey:
        """The key in ``path``; refused when others may read it."""
        try:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                raise UsageError(
                    f"audit key {path} is readable by others (mode {mode:o}): chmod 600 it"
                )
            return cls(path.read_bytes().strip(), path)
        except OSError as exc:
            raise UsageError(f"cannot read the audit key {path}: {exc.strerror}") from exc

    @classmethod
    def create(cls, path: Path) -> AuditKey:
        """A new random key written to ``path`` (0600); an existing file is kept and read.

        The key is written in full under another name and then linked into place, so a
        process starting at the same moment reads the whole key or makes none.
        """
        # unique per caller: two threads of one process may make the key at once
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
            try:
                write_all(fd, secrets.token_hex(MIN_BYTES).encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        except OSError as exc:
            raise UsageError(f"cannot create the audit key {path}: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        return cls.read(path)


def state_key(state_dir: Path, external: Path | None, has_records: bool) -> AuditKey:
    """The key of a state folder: ``external`` if given, else its own (made when new).

    A state folder whose log has records but whose key is gone cannot be verified: that
    is an error, never a reason to start a new key.
    """
    if external is not None:
        return AuditKey.read(external)
    path = state_dir / KEY_FILE
    make_private(path)
    if path.exists():
        return AuditKey.read(path)  # nothing written: it works on a full disk
    if not has_records:
        return AuditKey.create(path)
    raise UsageError(
        f"the audit key {path} is missing, so the audit log cannot be verified or extended;"
        " if the log was written with an external key, give it with --audit-key FILE (a"
        " state folder made before the audit log was keyed has none: start a new one)"
    )

"""Bearer tokens of the control plane: each has a name and a role, kept in ``tokens.json``.

A token is ``lg_`` and 43 URL-safe characters (256 random bits), shown once when created;
the file keeps only its SHA-256 digest, with its name, role and creation time. The file
lives in the state folder (0700), is 0600 and written atomically; a file that is not
private (another mode, another owner, a symlink) is refused, never used nor repaired.
``authenticate`` notices when the file changed on disk, so a token created or revoked by
``luminaguard token`` takes effect in a running server at once.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from luminaguard.errors import LuminaGuardError, UsageError
from luminaguard.scheduler.private import FILE_MODE, private_file, private_folder, write_atomically

TOKENS_FILE = "tokens.json"
LOCK_FILE = "tokens.lock"
PREFIX = "lg_"
MAX_TOKEN_LENGTH = 200
_MAX_FILE_BYTES = 1 << 20
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
# What create makes (43 characters after the prefix), or longer; never shorter than 32.
_TOKEN = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9_-]{32,}")
# A file changed within this long before it was read is read again on every check: a
# second change inside one tick of a coarse clock could keep its size and mtime.
_RACY_NS = 2_000_000_000


class TokenFileError(LuminaGuardError):
    """``tokens.json`` is not private, or not a list of tokens: nothing is authenticated."""


class Role(StrEnum):
    """What a token's holder is: each role grants a set of permissions."""

    VIEWER = "viewer"
    SUBMITTER = "submitter"
    APPROVER = "approver"
    ADMIN = "admin"


class Permission(StrEnum):
    """What a request needs to be allowed."""

    READ = "read"
    SUBMIT = "submit"
    CANCEL = "cancel"
    APPROVE = "approve"
    ADMIN = "admin"


#: Each role's permissions. A submitter cannot approve, an approver cannot submit.
PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.VIEWER: frozenset({Permission.READ}),
        Role.SUBMITTER: frozenset({Permission.READ, Permission.SUBMIT, Permission.CANCEL}),
        Role.APPROVER: frozenset({Permission.READ, Permission.APPROVE}),
        Role.ADMIN: frozenset(Permission),
    }
)


def allows(role: Role, permission: Permission) -> bool:
    """Whether ``role`` grants ``permission``."""
    return permission in PERMISSIONS[role]


@dataclass(frozen=True)
class Identity:
    """Who a valid token belongs to."""

    name: str
    role: Role


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: its name, role and creation time (seconds since the epoch)."""

    name: str
    role: Role
    created: float


@dataclass(frozen=True)
class _Entry:
    info: TokenInfo
    digest: str

    def as_json(self) -> dict[str, Any]:
        info = self.info
        return {
            "name": info.name,
            "role": str(info.role),
            "created": info.created,
            "sha256": self.digest,
        }


_Key = tuple[int, int, int, int]


@dataclass(frozen=True)
class _Snapshot:
    key: _Key
    entries: tuple[_Entry, ...]
    read_ns: int

    def still(self, key: _Key) -> bool:
        """Whether the file whose stat gives ``key`` is surely the one read."""
        return key == self.key and self.read_ns - key[3] > _RACY_NS


def check_name(name: str) -> str:
    """``name`` when it is 1-64 letters, digits, ``.``, ``_``, ``@`` or ``-``; else refuse."""
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"token name {name!r} is not a name: use 1-64 letters, digits, '.', '_', '@' or '-'"
        )
    return name


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise UsageError(f"unknown role {value!r}: use one of {', '.join(Role)}") from None


def _digest(token: str) -> str:
    # A plain SHA-256, no salt nor slow hash: a token holds 256 random bits, so nobody can
    # guess one from its digest. Slow hashes (scrypt, argon2) protect guessable passwords.
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _key(info: os.stat_result) -> _Key:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _check_private(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise TokenFileError(f"the tokens file {path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise TokenFileError(
            f"the tokens file {path} is owned by uid {info.st_uid}, not by this user"
            f" (uid {os.geteuid()}): refused"
        )
    mode = info.st_mode & 0o7777
    if mode != FILE_MODE:
        raise TokenFileError(
            f"the tokens file {path} has mode {mode:04o}, not 0600: others may have read or"
            f" changed it; refused (check it, then chmod 600 {path})"
        )


def _entry(raw: dict[str, Any]) -> _Entry:
    created = raw["created"]
    if not isinstance(created, int | float) or not _DIGEST.fullmatch(raw["sha256"]):
        raise ValueError("a created time or a digest is not valid")
    return _Entry(TokenInfo(check_name(raw["name"]), Role(raw["role"]), created), raw["sha256"])


def _parse(path: Path, data: bytes) -> tuple[_Entry, ...]:
    try:
        entries = tuple(_entry(raw) for raw in json.loads(data)["tokens"])
    except (ValueError, KeyError, TypeError, LuminaGuardError) as exc:
        raise TokenFileError(f"the tokens file {path} is not a list of tokens: {exc}") from None
    if len({entry.info.name for entry in entries}) != len(entries):
        raise TokenFileError(f"the tokens file {path} names a token twice")
    return entries


class TokenFile:
    """The tokens of one state folder, in ``STATE/tokens.json``.

    Created (empty, 0600, its folder 0700) when missing. Changes are made under a lock
    (``tokens.lock``), so two commands creating tokens at once both take effect.
    """

    def __init__(self, state: Path) -> None:
        self.path = private_folder(state) / TOKENS_FILE
        self._lock = state / LOCK_FILE
        self._snapshot: _Snapshot | None = None
        with self._locked():  # a file that is not private is refused now, not at a request
            if self._load() is None:
                self._write([])

    def create(self, name: str, role: Role | str, *, replace: bool = False) -> str:
        """A new token for ``name`` with ``role``: returned once, only its digest is kept.

        An existing name is refused unless ``replace``: then its old token stops working.
        """
        check_name(name)
        token = PREFIX + secrets.token_urlsafe(32)
        new = _Entry(TokenInfo(name, _role(role), time.time()), _digest(token))

        def add(entries: builtins.list[_Entry]) -> bool:
            if not replace and any(entry.info.name == name for entry in entries):
                raise UsageError(
                    f"a token named {name!r} exists already: revoke it first, or replace it"
                    " (--replace)"
                )
            entries[:] = [entry for entry in entries if entry.info.name != name] + [new]
            return True

        self._change(add)
        return token

    def revoke(self, name: str) -> bool:
        """Remove the token of ``name``; False when there is none."""

        def remove(entries: builtins.list[_Entry]) -> bool:
            kept = [entry for entry in entries if entry.info.name != name]
            found = len(kept) != len(entries)
            entries[:] = kept
            return found

        return self._change(remove)

    def authenticate(self, token: str) -> Identity | None:
        """Whose token this is, or None (unknown, revoked or malformed: never an error).

        Malformed is anything but ``lg_`` and 32 to 197 URL-safe characters (ASCII).

        The digest is compared with every entry's, each in constant time, and the loop
        does not stop at a match. A tokens file that is not private raises
        ``TokenFileError``.
        """
        if len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
            return None
        digest = _digest(token)
        found: Identity | None = None
        for entry in self._entries():
            if hmac.compare_digest(entry.digest, digest):
                found = Identity(entry.info.name, entry.info.role)
        return found

    def list(self) -> builtins.list[TokenInfo]:
        """The tokens by name: name, role and creation time, never a digest."""
        return sorted((entry.info for entry in self._entries()), key=lambda info: info.name)

    def _entries(self) -> tuple[_Entry, ...]:
        """The entries as on disk now: read again when the file changed."""
        try:
            key = _key(os.stat(self.path, follow_symlinks=False))
        except FileNotFoundError:
            return ()
        if self._snapshot is None or not self._snapshot.still(key):
            self._snapshot = self._load()
        return self._snapshot.entries if self._snapshot is not None else ()

    def _load(self) -> _Snapshot | None:
        """The file as read now (None when missing), refused unless private."""
        read_ns = time.time_ns()
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:  # a symlink: ELOOP
            raise TokenFileError(f"cannot open the tokens file {self.path}: {exc}") from exc
        with open(fd, "rb") as file:
            info = os.fstat(fd)
            _check_private(self.path, info)
            data = file.read(_MAX_FILE_BYTES + 1)
        if len(data) > _MAX_FILE_BYTES:
            raise TokenFileError(f"the tokens file {self.path} is over {_MAX_FILE_BYTES} bytes")
        return _Snapshot(_key(info), _parse(self.path, data), read_ns)

    def _change(self, edit: Callable[[builtins.list[_Entry]], bool]) -> bool:
        """Apply ``edit`` to the entries on disk, under the lock; write them if it says so."""
        with self._locked():
            snapshot = self._load()
            entries = builtins.list(snapshot.entries if snapshot else ())
            changed = edit(entries)
            if changed:
                self._write(entries)
            return changed

    def _write(self, entries: builtins.list[_Entry]) -> None:
        data = {"version": 1, "tokens": [entry.as_json() for entry in entries]}
        write_atomically(self.path, (json.dumps(data, indent=2) + "\n").encode())
        self._snapshot = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(private_file(self._lock), os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

"""Git URLs, parsed (never pattern-matched to decide what runs) and redacted.

Accepted: ``https://``, ``http://``, ``ssh://``, ``file://`` URLs, scp-like
``user@host:path``, and a local path to a repository. Refused: anything starting with
``-`` (git would read it as an option) and other transports (``ext::``, ``fd::``…).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

REMOTE_SCHEMES = frozenset({"https", "http", "ssh"})
LOCAL_SCHEMES = frozenset({"file"})
_REDACTED = "***"
#: For redacting text git wrote (never to decide anything): ``scheme://userinfo@``.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


@dataclass(frozen=True)
class GitUrl:
    """A parsed git URL: whether it is local (``file://`` or a path) and its secrets."""

    raw: str
    local: bool
    secrets: tuple[str, ...]

    @property
    def shown(self) -> str:
        """The URL as users may see it: any user info replaced by ``***``."""
        return redact(self.raw)


def _scp_like(url: str) -> bool:
    """``user@host:path``: an ``@`` and a ``:`` before the first ``/``, no scheme."""
    head, colon, _ = url.partition(":")
    return bool(colon) and "/" not in head and "@" in head and not head.startswith("@")


def is_git_url(url: str) -> bool:
    """Whether ``url`` names a remote or ``file://`` repository (not a bare path)."""
    if "://" in url:
        return urlsplit(url).scheme.lower() in REMOTE_SCHEMES | LOCAL_SCHEMES
    return _scp_like(url)


def parse(url: str, *, what: str = "URL") -> GitUrl:
    """Check ``url``; ``ValueError`` with a redacted message when it cannot be used."""
    if not url or url.startswith("-"):
        raise ValueError(f"the {what} {redact(url)!r} is refused: it would read as an option")
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError(f"the {what} {redact(url)!r} holds a control character")
    if "://" in url:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in REMOTE_SCHEMES | LOCAL_SCHEMES:
            raise ValueError(f"the {what} {redact(url)!r} has an unsupported scheme {scheme!r}")
        secrets = _secrets(scheme, parts.username, parts.password)
        return GitUrl(url, scheme in LOCAL_SCHEMES, secrets)
    if _scp_like(url):
        return GitUrl(url, False, ())
    if "::" in url:
        raise ValueError(f"the {what} {redact(url)!r} names a transport that is refused")
    return GitUrl(url, True, ())


def _secrets(scheme: str, user: str | None, password: str | None) -> tuple[str, ...]:
    """The password; over HTTP(S) without one, the user name (often a token)."""
    secret = password or (user if scheme in ("https", "http") else None)
    if not secret:
        return ()
    return tuple(dict.fromkeys((secret, unquote(secret))))


def redact(url: str) -> str:
    """``url`` with its user info (``scheme://user:secret@host``) and query as ``***``.

    A query can carry a token (``?private_token=...``); a ``user:token@host:path``
    form is shown as ``***@host:path``.
    """
    if "://" not in url:
        user, at, rest = url.partition("@")
        return f"{_REDACTED}@{rest}" if at and ":" in user and "/" not in user else url
    parts = urlsplit(url)
    if parts.query:
        parts = parts._replace(query=_REDACTED)
    if "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{_REDACTED}@{host}")
    return parts.geturl()


def redact_text(text: str, url: GitUrl) -> str:
    """``text`` (git's stderr) with ``url``'s secrets and any URL user info redacted."""
    text = text.replace(url.raw, url.shown)
    for secret in url.secrets:
        text = text.replace(secret, _REDACTED)
    return _USERINFO.sub(rf"\g<scheme>{_REDACTED}@", text)

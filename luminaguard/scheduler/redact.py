r"""Secret values replaced by ``***`` in every form they can take, before anything is stored.

Redaction works on values, not on serialised text: every string of a nested structure
(dict keys too) is redacted before it is written to runs.db, the audit log or a
terminal, so that serialisation cannot hide a secret from it (JSON escaping a ``"``,
``\`` or ``é`` used to).

A secret is looked for as it is, and so is each of its whitespace-separated words of
``MIN_SECRET_LENGTH`` or more (the token of ``Bearer TOKEN``), each in every encoding a
program commonly puts it in:

- JSON string escaping, ASCII-only (``\u00e9``) and not (``é``), and escaped twice (JSON
  text quoted inside JSON, as in a logged request body);
- Python ``repr`` (whichever quote it picks) and ``ascii``;
- JSON that escapes ``/`` as ``\/`` (PHP, Ruby);
- URL encoding (``quote``, with and without keeping ``/``, and ``quote_plus``): tokens
  travel in URLs and query strings, and HTTP errors quote the URL they failed on;
- base64 (standard and URL-safe alphabets), also inside a longer base64 text (HTTP
  Basic credentials ``user:token``): for each of the three byte offsets the secret can
  start at, the characters that depend on the secret's bytes alone; matched across line
  breaks (base64 wrapped at 76 or 64 columns);
- a number (an all-digit token in structured content) whose digits hold a secret.

Not covered: a secret split across outputs, transformed by the program (reversed, hashed,
hex-encoded, encrypted), or escaped in other ways (HTML, shell quoting). A program that
holds a secret can always disclose it in a form no redactor knows; redaction stops
accidents and tool echoes.

A secret shorter than ``MIN_SECRET_LENGTH`` cannot be redacted safely: it occurs by
chance in ordinary output (mangling it, and telling the reader where the secret matched)
and is guessable anyway. ``check_secrets`` refuses such a secret before a run starts.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypeVar

from luminaguard.errors import UsageError

#: Shortest secret value accepted. Eight characters: shorter strings match ordinary
#: text by chance, and their base64 core (what is checked inside longer base64) stays
#: at least ten characters, far from chance matches.
MIN_SECRET_LENGTH = 8

MASK = "***"

T = TypeVar("T")


def _base64_forms(secret: bytes) -> set[str]:
    """The secret's base64 on its own, and its offset-independent cores in longer text."""
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(secret).decode().rstrip("="))
        for offset in range(3):
            text = encode(bytes(offset) + secret).decode()
            start = -(-8 * offset // 6)  # the first character of the secret's bits alone
            end = 8 * (offset + len(secret)) // 6  # past the last such character
            forms.add(text[start:end])
    return forms


def encodings(secret: str) -> set[str]:
    """Every form of ``secret`` that is redacted (see the module's docstring)."""
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        escaped,
        json.dumps(escaped, ensure_ascii=False)[1:-1],  # JSON text quoted in JSON (a log line)
        repr(secret)[1:-1],
        repr('"' + secret)[2:-1],  # repr inside a text holding a '"': quotes ', escapes '
        ascii(secret)[1:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),  # the default keeps "/" (a path, a URL)
        urllib.parse.quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1].replace("/", "\\/"),  # JSON that escapes "/" (PHP, Ruby)
        escaped.replace("/", "\\/"),
    }
    return {form for form in forms if form}


def base64_forms(secret: str) -> set[str]:
    """The base64 forms of ``secret`` (none for one too short to look for safely)."""
    if len(secret) < MIN_SECRET_LENGTH:  # a shorter one's base64 core matches by chance
        return set()
    return {form for form in _base64_forms(secret.encode()) if form}


def _spaced(form: str) -> str:
    """A base64 form matched across line breaks (base64 wrapped at 76 or 64 columns)."""
    return r"\s*".join(map(re.escape, form))


class Redactor:
    """Replaces every known secret value, in every known form, by ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # a header value "Bearer TOKEN" is one secret, and a server may echo TOKEN alone
        given = {s for s in secrets if s}
        words = {word for s in given for word in s.split() if len(word) >= MIN_SECRET_LENGTH}
        self.secrets = sorted(given | words, key=len, reverse=True)
        forms = {form for secret in self.secrets for form in encodings(secret)}
        wrapped = {form for secret in self.secrets for form in base64_forms(secret)}
        # longest first: the alternation takes the first that matches at a position
        ordered = sorted(forms | wrapped, key=lambda form: (-len(form), form))
        parts = [_spaced(f) if f in wrapped and f not in forms else re.escape(f) for f in ordered]
        self._pattern = re.compile("|".join(parts)) if parts else None

    def including(self, secrets: Iterable[str]) -> Redactor:
        """A redactor for these secrets too (itself when it knows them all)."""
        more = set(secrets) - set(self.secrets)
        return Redactor([*self.secrets, *more]) if more else self

    def __call__(self, text: str) -> str:
        """``text`` with every form of every secret replaced, and a secret's cut-off start.

        Outputs are cut at a size limit before they are redacted, so a secret across the
        cut leaves its first characters at the very end: those go too (4 or more).
        """
        if self._pattern is None:
            return text
        return _cut_secret_removed(self._pattern.sub(MASK, text), self.secrets)

    def value(self, value: T) -> T:
        """A copy of ``value`` with every string in it redacted (dict keys too).

        Lists, tuples and dicts are walked; other values that are not JSON scalars are
        turned into their (redacted) ``str``, as ``json.dumps(default=str)`` would.
        """
        return self._walk(value)  # type: ignore[no-any-return]

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int | float):  # a numeric token is a secret too
            return MASK if self(str(value)) != str(value) else value
        if isinstance(value, Mapping):
            return {self._walk(key): self._walk(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(item) for item in value]
        return self(str(value))


def _cut_secret_removed(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        for size in range(min(len(secret) - 1, len(text)), 3, -1):
            if text.endswith(secret[:size]):
                return text[:-size] + MASK
    return text


class ReportSink(Protocol):
    """Where step progress goes (the runner's ``Reporter``)."""

    def step(self, step_id: str, state: str, detail: str = "") -> None:
        """A step changed state."""
        ...


class RedactingReporter:
    """A reporter whose details (errors, commands) pass through a Redactor first."""

    def __init__(self, inner: ReportSink, redact: Redactor) -> None:
        self.inner = inner
        self.redact = redact

    def step(self, step_id: str, state: str, detail: str = "") -> None:
        """Report the change with its detail redacted."""
        self.inner.step(step_id, state, self.redact(detail))


def check_secrets(secrets: Mapping[str, str]) -> None:
    """Refuse (UsageError) a secret too short to redact; ``secrets``: env var -> value."""
    short = sorted(name for name, value in secrets.items() if len(value) < MIN_SECRET_LENGTH)
    if short:
        names = ", ".join(f"{name} ({len(secrets[name])} characters)" for name in short)
        raise UsageError(
            f"secret {names} is shorter than {MIN_SECRET_LENGTH} characters: too short to "
            "keep out of outputs and logs; use a longer secret. Nothing was run"
        )

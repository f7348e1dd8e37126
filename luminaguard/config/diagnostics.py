"""Located problems in configuration, and the error that carries all of them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from luminaguard.config.location import SourceLocation
from luminaguard.errors import LuminaGuardError


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in the user's configuration, at one place in one file."""

    location: SourceLocation
    message: str

    def __str__(self) -> str:
        return f"{self.location}: error: {self.message}"


class ConfigError(LuminaGuardError):
    """One or more problems in the configuration; nothing was compiled or run."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sorted(set(diagnostics))
        super().__init__("\n".join(str(d) for d in self.diagnostics))

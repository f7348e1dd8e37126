"""Rendering configuration errors: ``FILE:LINE:COL: error: ...`` with the source line."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from luminaguard.config.diagnostics import ConfigError, Diagnostic


@lru_cache(maxsize=64)
def _lines(file: str) -> tuple[str, ...]:
    try:
        return tuple(Path(file).read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError):
        return ()


def render_diagnostic(diagnostic: Diagnostic) -> str:
    """One error, its source line and a caret under the column."""
    where = diagnostic.location
    text = f"{diagnostic}\n"
    lines = _lines(where.file)
    if 0 < where.line <= len(lines):
        number = str(where.line)
        pad = " " * len(number)
        text += (
            f"{pad} |\n{number} | {lines[where.line - 1]}\n{pad} | {' ' * (where.column - 1)}^\n"
        )
    return text


def render_config_error(error: ConfigError) -> str:
    """Every error, then a one-line summary saying that nothing happened."""
    _lines.cache_clear()
    parts = [render_diagnostic(d) for d in error.diagnostics]
    files = len({d.location.file for d in error.diagnostics})
    count = len(error.diagnostics)
    noun = "error" if count == 1 else "errors"
    parts.append(
        f"{count} {noun} in {files} file{'s' if files != 1 else ''}; nothing was compiled\n"
    )
    return "".join(parts)

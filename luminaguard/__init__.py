"""LuminaGuard: declarative, contained runs of AI-agent work.

YAML in git is compiled into a content-hashed plan whose every step is classified
Green (runs by itself) or Red (halts for human approval).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

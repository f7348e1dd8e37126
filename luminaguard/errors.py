"""The errors LuminaGuard reports to its users.

    LuminaGuardError          root of every error the tool means to report
     ├── ConfigError          problems in the user's YAML, each a Diagnostic with a
     │                        location (defined in ``luminaguard.config.diagnostics``)
     └── UsageError           a command line that cannot be carried out

Anything else that escapes a command is a bug, reported as an internal error by
``luminaguard.ui.exit_codes``.
"""

from __future__ import annotations


class LuminaGuardError(Exception):
    """Root of the errors LuminaGuard reports to its users."""


class UsageError(LuminaGuardError):
    """A command line that cannot be carried out (unknown workload, bad option value)."""

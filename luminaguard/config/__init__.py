"""The config layer: load, validate and render the YAML kinds; export their JSON Schemas.

Names are imported on first use: every command reports ``ConfigError`` (from the light
``config.diagnostics``) and must not load the models and the validator to do so.
"""

from __future__ import annotations

from luminaguard.lazy import exports

TYPE_CHECKING = False  # mypy treats this name as true
if TYPE_CHECKING:
    from luminaguard.config.diagnostics import ConfigError, Diagnostic
    from luminaguard.config.loader import LoadResult, load_documents
    from luminaguard.config.location import LocationIndex, SourceLocation
    from luminaguard.config.validate import Document

__all__ = [
    "ConfigError",
    "Diagnostic",
    "Document",
    "LoadResult",
    "LocationIndex",
    "SourceLocation",
    "load_documents",
]
__getattr__ = exports(
    __name__,
    {
        "ConfigError": "luminaguard.config.diagnostics",
        "Diagnostic": "luminaguard.config.diagnostics",
        "Document": "luminaguard.config.validate",
        "LoadResult": "luminaguard.config.loader",
        "LocationIndex": "luminaguard.config.location",
        "SourceLocation": "luminaguard.config.location",
        "load_documents": "luminaguard.config.loader",
    },
)

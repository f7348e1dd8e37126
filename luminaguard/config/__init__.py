"""The config layer: load, validate and render the YAML kinds; export their JSON Schemas."""

from __future__ import annotations

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

"""Reading configuration from any mix of files and folders into validated documents."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from luminaguard.config.diagnostics import Diagnostic
from luminaguard.config.validate import Document, validate_document
from luminaguard.config.yamlsource import RawDocument, decode, parse_yaml
from luminaguard.errors import UsageError

_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadResult:
    """Every document read, the valid ones, and every problem found on the way."""

    documents: list[Document] = field(default_factory=list)
    raw: list[RawDocument] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def declared(self, kind: str) -> set[str]:
        """Names of every document of ``kind``, valid or not (to avoid knock-on errors)."""
        names: set[str] = set()
        for raw in self.raw:
            data = raw.data if isinstance(raw.data, dict) else {}
            metadata = data.get("metadata")
            if data.get("kind") == kind and isinstance(metadata, dict):
                names.add(str(metadata.get("name")))
        return names


RECIPES = "rootfs"


def config_files(paths: Iterable[str]) -> Iterator[Path]:
    """The YAML files named by ``paths``: files as given, folders walked in sorted order.

    A walk skips hidden files and folders, and ``rootfs/`` folders: they hold image
    recipes (an Image's ``rootfs``), not documents.
    """
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                parts = found.relative_to(path).parts
                hidden = any(part.startswith(".") or part == RECIPES for part in parts[:-1])
                hidden = hidden or parts[-1].startswith(".")
                if found.is_file() and found.name.endswith(_SUFFIXES) and not hidden:
                    yield found
        elif path.is_file():
            yield path
        else:
            raise UsageError(f"no such file or directory: {given}")


def load_documents(paths: Iterable[str]) -> LoadResult:
    """Read, parse and validate every document under ``paths``; problems are collected."""
    result = LoadResult()
    seen: set[Path] = set()
    for path in config_files(paths):
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        result.files.append(str(path))
        text, undecodable = decode(str(path), path.read_bytes())
        if text is None:
            result.diagnostics.extend([undecodable] if undecodable else [])
            continue
        raws, problems = parse_yaml(str(path), text)
        result.diagnostics.extend(problems)
        for raw in raws:
            result.raw.append(raw)
            document, problems = validate_document(raw)
            result.diagnostics.extend(problems)
            if document is not None:  # may come with problems: unknown fields it ignored
                result.documents.append(document)
    return result

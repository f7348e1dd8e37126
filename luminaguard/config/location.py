"""Where a YAML node came from: file, line and column, kept through every stage."""

from __future__ import annotations

from dataclasses import dataclass, field

#: A path to a node inside one document: mapping keys and sequence indexes.
NodePath = tuple[str | int, ...]


@dataclass(frozen=True, order=True, slots=True)
class SourceLocation:
    """A 1-based line and column in a file, printed as ``FILE:LINE:COL``."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass
class LocationIndex:
    """Locations of every value and every mapping key of one YAML document."""

    root: SourceLocation
    values: dict[NodePath, SourceLocation] = field(default_factory=dict)
    keys: dict[NodePath, SourceLocation] = field(default_factory=dict)

    def value(self, path: NodePath) -> SourceLocation:
        """Location of the deepest node on ``path`` that exists in the document."""
        for end in range(len(path), 0, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return self.root

    def key(self, path: NodePath) -> SourceLocation:
        """Location of the mapping key that names ``path``, else of its value."""
        return self.keys.get(path) or self.value(path)

    def deepest(self, path: NodePath) -> NodePath:
        """The longest prefix of ``path`` that names a node in the document."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.values:
                return path[:end]
        return ()

"""Every valid document by kind and name; duplicate names of one kind are refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from luminaguard.config.diagnostics import Diagnostic
from luminaguard.config.loader import LoadResult
from luminaguard.config.models import (
    KINDS,
    AgentDocument,
    AnyDocument,
    ImageDocument,
    PolicyDocument,
    PoolDocument,
    WorkloadDocument,
)
from luminaguard.config.validate import Document

_D = TypeVar("_D", bound=AnyDocument)


@dataclass
class Catalog:
    """Validated documents, one name per kind, plus names declared by invalid documents."""

    by_kind: dict[str, dict[str, Document]] = field(default_factory=dict)
    declared: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, loaded: LoadResult) -> tuple[Catalog, list[Diagnostic]]:
        """Index ``loaded``; a second document of the same kind and name is an error."""
        catalog = cls()
        problems: list[Diagnostic] = []
        for document in loaded.documents:
            names = catalog.by_kind.setdefault(document.kind, {})
            first = names.get(document.name)
            if first is not None:
                where = document.source.locations.value(("metadata", "name"))
                origin = first.source.locations.value(("metadata", "name"))
                message = f"duplicate {document.kind} {document.name!r} (first defined at {origin})"
                problems.append(Diagnostic(where, message))
                continue
            names[document.name] = document
        for kind in KINDS:
            catalog.declared[kind] = loaded.declared(kind)
        return catalog, problems

    def get(self, kind: str, name: str) -> Document | None:
        """The document of ``kind`` named ``name``, if valid and present."""
        return self.by_kind.get(kind, {}).get(name)

    def names(self, kind: str) -> list[str]:
        """Names of the valid documents of ``kind``, sorted."""
        return sorted(self.by_kind.get(kind, {}))

    def is_declared(self, kind: str, name: str) -> bool:
        """Whether some document, valid or not, declares ``kind`` ``name``."""
        return name in self.declared.get(kind, set())

    def model(self, kind: str, name: str, model_type: type[_D]) -> _D | None:
        """The typed model of ``kind`` ``name``, if present."""
        document = self.get(kind, name)
        if document is None:
            return None
        assert isinstance(document.model, model_type)
        return document.model

    def agent(self, name: str) -> AgentDocument | None:
        """The Agent named ``name``."""
        return self.model("Agent", name, AgentDocument)

    def pool(self, name: str) -> PoolDocument | None:
        """The Pool named ``name``."""
        return self.model("Pool", name, PoolDocument)

    def image(self, name: str) -> ImageDocument | None:
        """The Image named ``name``."""
        return self.model("Image", name, ImageDocument)

    def policy(self, name: str) -> PolicyDocument | None:
        """The Policy named ``name``."""
        return self.model("Policy", name, PolicyDocument)

    def workload(self, name: str) -> WorkloadDocument | None:
        """The Workload named ``name``."""
        return self.model("Workload", name, WorkloadDocument)

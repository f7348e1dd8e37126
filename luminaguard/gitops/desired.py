"""The desired state: every document of a source at one revision, validated and compiled.

Everything is loaded, validated and compiled before anything is compared or applied:
a source with any problem yields ``ConfigError`` (each diagnostic naming its file,
relative to the source, line and column) and no desired state at all, so a bad commit
can never be half applied. Workloads the reconciler starts by itself (``trigger`` or
``schedule``) are compiled to plans here; the others are tracked as documents only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminaguard.compiler.compile import compile_workload, load_bundle
from luminaguard.compiler.lock import LOCK_FILE, load_lock
from luminaguard.compiler.plan import Plan
from luminaguard.config.diagnostics import ConfigError, Diagnostic
from luminaguard.config.models import WorkloadDocument
from luminaguard.config.validate import Document

#: The kinds the reconciler keeps in step with the source, in the order they apply:
#: what others refer to first (an agent's policy exists before a workload runs it).
KINDS = ("Image", "Pool", "Policy", "Agent", "Workload")

Key = tuple[str, str]  # (kind, name)


@dataclass(frozen=True)
class DesiredObject:
    """One document as the source has it: its spec, where it is, at which revision."""

    kind: str
    name: str
    spec: dict[str, Any]
    path: str  # relative to the source
    line: int
    revision: str

    @property
    def key(self) -> Key:
        """(kind, name)."""
        return (self.kind, self.name)

    @property
    def hash(self) -> str:
        """SHA-256 of the spec's canonical JSON (what "changed" means)."""
        return spec_hash(self.spec)


@dataclass(frozen=True)
class Desired:
    """What the source says should be: its objects and the plans of its started workloads."""

    url: str
    revision: str
    objects: dict[Key, DesiredObject]
    plans: dict[str, Plan]  # workload name -> plan, for workloads with a trigger or schedule
    recipes: dict[str, Path] = dataclasses.field(default_factory=dict)  # image -> its recipe


def spec_hash(spec: dict[str, Any]) -> str:
    """SHA-256 of a spec's canonical JSON."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def desired_state(
    root: Path, url: str, revision: str, revision_of: Callable[[Path], str]
) -> Desired:
    """The desired state of the source checked out at ``root``; ``ConfigError`` if invalid.

    ``revision_of(file)`` is the revision of one document's file (recorded per object
    and in each plan). A ``luminaguard.lock`` at the root is compiled against.
    """
    lock_path = root / LOCK_FILE
    lock = load_lock(lock_path) if lock_path.is_file() else None
    bundle = load_bundle([str(root)], lock)
    problems = list(bundle.problems)
    plans: dict[str, Plan] = {}
    for name in bundle.catalog.names("Workload"):
        workload = bundle.catalog.workload(name)
        if workload is None or not _started(workload):
            continue
        plan, found = compile_workload(bundle, name, None)
        problems.extend(found)
        if plan is not None:
            sources = {file: revision_of(Path(file)) for file in sorted(plan.files())}
            plans[name] = plan.model_copy(update={"sources": sources})
    if problems:
        raise ConfigError(relative(problems, root))
    objects: dict[Key, DesiredObject] = {}
    recipes: dict[str, Path] = {}
    for document in bundle.loaded.documents:
        if document.kind not in KINDS:
            continue
        made = _object(document, root, revision_of)
        recipe = _recipe(document, root) if document.kind == "Image" else None
        if recipe is not None:  # a changed recipe is a changed image: it is built again
            recipes[made.name] = recipe
            digest = "sha256:" + hashlib.sha256(recipe.read_bytes()).hexdigest()
            made = dataclasses.replace(made, spec={**made.spec, "recipe_sha256": digest})
        objects[made.key] = made
    return Desired(url, revision, objects, plans, recipes)


def _recipe(document: Document, root: Path) -> Path | None:
    """``rootfs/NAME.yaml`` in the Image's folder or one above it, within the source."""
    name = document.model.spec.model_dump().get("rootfs")
    folder, top = Path(document.source.file).resolve().parent, root.resolve()
    while name and folder.is_relative_to(top):
        candidate = folder / "rootfs" / f"{name}.yaml"
        if candidate.is_file() and candidate.resolve().is_relative_to(top):
            return candidate
        folder = folder.parent
    return None


def _started(workload: WorkloadDocument) -> bool:
    return workload.spec.trigger is not None or workload.spec.schedule is not None


def _object(document: Document, root: Path, revision_of: Callable[[Path], str]) -> DesiredObject:
    where = document.source.locations.value(())
    file = Path(where.file)
    spec = document.model.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return DesiredObject(
        kind=document.kind,
        name=document.name,
        spec=spec,
        path=_inside(file, root),
        line=where.line,
        revision=revision_of(file),
    )


def _inside(file: Path, root: Path) -> str:
    try:
        return str(file.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(file)


def relative(problems: list[Diagnostic], root: Path) -> list[Diagnostic]:
    """The diagnostics with each file named relative to the source's root."""
    made = []
    for problem in problems:
        location = dataclasses.replace(
            problem.location, file=_inside(Path(problem.location.file), root)
        )
        made.append(dataclasses.replace(problem, location=location))
    return made

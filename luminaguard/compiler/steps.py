"""Rendering one workload's steps: params now, step outputs left for the runner."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue

from luminaguard.compiler.dag import StepGraph
from luminaguard.config.diagnostics import Diagnostic
from luminaguard.config.location import NodePath
from luminaguard.config.models import Step
from luminaguard.config.render import (
    STEP_OUTPUTS,
    Namespace,
    TemplateProblem,
    check_expression,
    command_template,
    is_template,
    string_template,
)
from luminaguard.config.validate import Document


class Unknown:
    """Stands for a structured output at compile time: every part of it is unknown."""

    def __getattr__(self, name: str) -> Unknown:
        return self

    def __getitem__(self, key: object) -> Unknown:
        return self

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __str__(self) -> str:
        return ""


_PLACEHOLDERS: dict[str, Any] = {
    "stdout": "",
    "stderr": "",
    "exit_code": 0,
    "text": "",
    "is_error": False,
}


def compile_context(params: Mapping[str, JsonValue], steps: list[Step]) -> dict[str, Any]:
    """Template context for checking at compile time, with placeholder step outputs."""
    step_space = {}
    for step in steps:
        names = STEP_OUTPUTS["run" if step.run is not None else "call"]
        outputs = {name: _PLACEHOLDERS.get(name, Unknown()) for name in names}
        step_space[step.id] = Namespace(
            f"steps.{step.id}", {"outputs": Namespace(f"steps.{step.id}.outputs", outputs)}
        )
    return {"params": Namespace("params", params), "steps": Namespace("steps", step_space)}


@dataclass
class RenderedStep:
    """A step's command or arguments after compile-time rendering."""

    command: str | None
    args: dict[str, JsonValue]
    runtime: bool
    problems: list[Diagnostic] = field(default_factory=list)
    #: Steps used that are not direct needs, where: whether they are needs at all is
    #: asked of the whole graph at once (``unneeded_references``).
    references: list[tuple[NodePath, str]] = field(default_factory=list)


class StepRenderer:
    """Renders the templated parts of one step and collects every problem in it."""

    def __init__(
        self, document: Document, index: int, graph: StepGraph, context: dict[str, Any]
    ) -> None:
        self.document = document
        self.step: Step = document.model.spec.steps[index]  # type: ignore[union-attr]
        self.base: NodePath = ("spec", "steps", index)
        self.needs = graph.needs[self.step.id]
        self.context = context
        self.runtime = False
        self.problems: list[Diagnostic] = []
        self.references: list[tuple[NodePath, str]] = []

    def _problem(self, path: NodePath, message: str) -> None:
        where = self.document.source.locations.value((*self.base, *path))
        self.problems.append(Diagnostic(where, message))

    def _check_refs(self, refs: frozenset[str] | set[str], path: NodePath) -> None:
        """Note the steps used that are not direct needs, to be checked graph-wide."""
        for ref in sorted(refs.difference(self.needs)):
            if ref in self.context["steps"]:
                self.references.append((path, ref))

    def _string(self, text: str, path: NodePath) -> JsonValue:
        if not is_template(text):
            return text
        try:  # parsed once: the steps it uses, then its value (a command's: shell words)
            template = (command_template if path == ("run",) else string_template)(text)
            self._check_refs(template.steps, path)
            rendered: JsonValue = template.render(self.context)
        except TemplateProblem as exc:
            self._problem(path, str(exc))
            return text
        if template.steps:
            self.runtime = True
            return text
        return rendered

    def _value(self, value: JsonValue, path: NodePath) -> JsonValue:
        if isinstance(value, str):
            return self._string(value, path)
        if isinstance(value, list):
            return [self._value(item, (*path, i)) for i, item in enumerate(value)]
        if isinstance(value, dict):
            return {key: self._value(item, (*path, key)) for key, item in value.items()}
        return value

    def _when(self) -> None:
        if self.step.when is None:
            return
        try:
            self._check_refs(string_template("{{" + self.step.when + "}}").steps, ("when",))
            check_expression(self.step.when, self.context)
        except TemplateProblem as exc:
            self._problem(("when",), str(exc))

    def render(self) -> RenderedStep:
        """Render command or arguments; check the ``when`` expression."""
        command = None
        if self.step.run is not None:
            command = str(self._value(self.step.run, ("run",)))
        args = {key: self._value(value, ("args", key)) for key, value in self.step.args.items()}
        if self.runtime:  # all rendered once at run time: a param's value is never a template
            args = dict(self.step.args)
        self._when()
        return RenderedStep(command, args, self.runtime, self.problems, self.references)


def unneeded_references(
    document: Document, graph: StepGraph, rendered: Mapping[str, RenderedStep]
) -> list[Diagnostic]:
    """A problem for each step output used by a step that does not need that step."""
    index = {step.id: i for i, step in enumerate(document.model.spec.steps)}  # type: ignore[union-attr]
    queries = {(sid, ref) for sid, result in rendered.items() for _, ref in result.references}
    missing = graph.unneeded(queries)
    where = document.source.locations
    return [
        Diagnostic(
            where.value(("spec", "steps", index[sid], *path)),
            f"step {sid!r} uses steps.{ref} but does not need it; add {ref!r} to needs",
        )
        for sid, result in rendered.items()
        for path, ref in result.references
        if (sid, ref) in missing
    ]

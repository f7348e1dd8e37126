"""``compile_workload``: from validated documents to a sealed, classified Plan."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import JsonValue

from luminaguard.compiler.catalog import Catalog
from luminaguard.compiler.dag import build_graph
from luminaguard.compiler.lock import LockedTool, ToolLock
from luminaguard.compiler.plan import Plan, PlannedAgent, PlannedPolicy, PlannedPool, PlannedStep
from luminaguard.compiler.references import check_references
from luminaguard.compiler.steps import (
    RenderedStep,
    StepRenderer,
    compile_context,
    unneeded_references,
)
from luminaguard.compiler.tools import SchemaValidators, check_call, locked_tool
from luminaguard.config.diagnostics import ConfigError, Diagnostic
from luminaguard.config.loader import LoadResult, load_documents
from luminaguard.config.models import Step, WorkloadDocument
from luminaguard.config.validate import Document
from luminaguard.errors import UsageError
from luminaguard.policy.action import Action
from luminaguard.policy.engine import PolicyEngine
from luminaguard.shell.template import placements_kept


def _line(document: Document, *path: str | int) -> str:
    where = document.source.locations.value(path)
    return f"{where.file}:{where.line}"


@dataclass
class Bundle:
    """Everything loaded from the paths given, indexed, with its problems."""

    loaded: LoadResult
    catalog: Catalog
    problems: list[Diagnostic] = field(default_factory=list)
    lock: ToolLock | None = None
    _engines: dict[str, PolicyEngine] = field(default_factory=dict)
    schemas: SchemaValidators = field(default_factory=SchemaValidators)

    def engine(self, policy: str) -> PolicyEngine:
        """The engine of the policy named ``policy`` (built once)."""
        if policy not in self._engines:
            document = self.catalog.get("Policy", policy)
            assert document is not None
            model = self.catalog.policy(policy)
            assert model is not None
            sources = [_line(document, "spec", "rules", i) for i in range(len(model.spec.rules))]
            default = _line(document, "spec", "default")
            self._engines[policy] = PolicyEngine(policy, model.spec, sources, default)
        return self._engines[policy]

    def planned_policy(self, policy: str) -> PlannedPolicy:
        """The policy as carried in a plan."""
        engine = self.engine(policy)
        document = self.catalog.get("Policy", policy)
        assert document is not None
        sources = [rule.decision.source or "" for rule in engine.rules]
        return PlannedPolicy(
            spec=engine.spec, rule_sources=sources, source=str(document.source.location)
        )

    def planned_agent(self, name: str) -> PlannedAgent:
        """The agent as carried in a plan, with the image of its VM resolved."""
        agent = self.catalog.agent(name)
        document = self.catalog.get("Agent", name)
        assert agent is not None and document is not None
        pool = self.catalog.pool(agent.spec.pool) if agent.spec.pool else None
        image_name = pool.spec.image if pool else agent.spec.image
        image = self.catalog.image(image_name) if image_name else None
        return PlannedAgent(
            spec=agent.spec,
            image=image.spec if image else None,
            source=str(document.source.location),
            base_dir=str(Path(document.source.file).parent),
        )

    def planned_pool(self, name: str) -> PlannedPool:
        """The pool as carried in a plan, with its image resolved."""
        pool = self.catalog.pool(name)
        document = self.catalog.get("Pool", name)
        assert pool is not None and document is not None
        image = self.catalog.image(pool.spec.image)
        image_document = self.catalog.get("Image", pool.spec.image)
        assert image is not None and image_document is not None
        return PlannedPool(
            spec=pool.spec,
            image=image.spec,
            source=str(document.source.location),
            base_dir=str(Path(image_document.source.file).parent),
        )

    def planned_pools(self, agents: Iterable[PlannedAgent]) -> dict[str, PlannedPool]:
        """The pools these agents take VMs from, by name."""
        names = sorted({agent.spec.pool for agent in agents if agent.spec.pool})
        return {name: self.planned_pool(name) for name in names}


def load_bundle(paths: Iterable[str], lock: ToolLock | None = None) -> Bundle:
    """Load, validate, index and cross-check every document under ``paths``."""
    loaded = load_documents(paths)
    catalog, duplicates = Catalog.build(loaded)
    problems = [*loaded.diagnostics, *duplicates, *check_references(catalog)]
    return Bundle(loaded, catalog, problems, lock)


def load_checked(paths: Iterable[str], lock: ToolLock | None = None) -> Bundle:
    """``load_bundle``, raising ConfigError with every problem if there is any."""
    bundle = load_bundle(paths, lock)
    if bundle.problems:
        raise ConfigError(bundle.problems)
    return bundle


def _params(workload: WorkloadDocument, overrides: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    unknown = sorted(set(overrides) - set(workload.spec.params))
    if unknown:
        known = ", ".join(sorted(workload.spec.params)) or "none"
        raise UsageError(
            f"workload {workload.metadata.name!r} has no param {unknown[0]!r} (params: {known})"
        )
    return {**workload.spec.params, **overrides}


def _action(step: Step, rendered: RenderedStep, locked: LockedTool | None) -> Action:
    if step.run is not None:
        return Action(kind="run", command=rendered.command)
    annotations = dict(locked.annotations) if locked else None  # unknown without a lock
    return Action(
        kind="call", server=step.server, tool=step.tool, args=rendered.args, annotations=annotations
    )


def _planned_step(
    bundle: Bundle, order: int, step: Step, rendered: RenderedStep, where: str
) -> PlannedStep:
    agent = bundle.catalog.agent(step.agent)
    assert agent is not None
    locked = locked_tool(bundle.lock, step)
    action = _action(step, rendered, locked)
    decision = None if rendered.runtime else bundle.engine(agent.spec.policy).decide(action)
    return PlannedStep(
        order=order,
        id=step.id,
        agent=step.agent,
        action=action,
        needs=list(step.needs),
        when=step.when,
        retries=step.retries,
        timeout=step.timeout,
        idempotent=step.idempotent,
        runtime=rendered.runtime,
        decision=decision,
        locked_tool=locked.fingerprint() if locked else None,
        source=where,
    )


def _resolvable(bundle: Bundle, workload: WorkloadDocument) -> bool:
    """Whether every step's agent and that agent's policy are valid documents."""
    for step in workload.spec.steps:
        agent = bundle.catalog.agent(step.agent)
        if agent is None or bundle.catalog.policy(agent.spec.policy) is None:
            return False
    return True


def _workload(bundle: Bundle, name: str) -> tuple[Document, WorkloadDocument]:
    document = bundle.catalog.get("Workload", name)
    workload = bundle.catalog.workload(name)
    if document is None or workload is None:
        known = ", ".join(bundle.catalog.names("Workload")) or "none"
        raise UsageError(f"no workload {name!r} (workloads: {known})")
    return document, workload


def compile_workload(
    bundle: Bundle, name: str, overrides: Mapping[str, JsonValue] | None = None
) -> tuple[Plan | None, list[Diagnostic]]:
    """Compile the workload ``name`` into a sealed Plan, or return every problem in it."""
    document, workload = _workload(bundle, name)
    params = _params(workload, overrides or {})
    graph, problems = build_graph(document, workload.spec.steps)
    if graph is None:
        return None, problems
    context = compile_context(params, workload.spec.steps)
    index = {step.id: i for i, step in enumerate(workload.spec.steps)}
    with placements_kept():  # a run: template's text shared by many steps: parsed once
        rendered = {
            sid: StepRenderer(document, index[sid], graph, context).render() for sid in graph.order
        }
    problems += [problem for result in rendered.values() for problem in result.problems]
    problems += unneeded_references(document, graph, rendered)
    for sid, result in rendered.items():
        step = workload.spec.steps[index[sid]]
        problems += check_call(
            document, index[sid], step, bundle.lock, result.args, result.runtime, bundle.schemas
        )
    if problems or not _resolvable(bundle, workload):
        return None, problems
    steps = [
        _planned_step(
            bundle,
            order,
            workload.spec.steps[index[sid]],
            rendered[sid],
            str(document.source.locations.value(("spec", "steps", index[sid]))),
        )
        for order, sid in enumerate(graph.order, start=1)
    ]
    agents = {agent: bundle.planned_agent(agent) for agent in sorted({s.agent for s in steps})}
    policies = {a.spec.policy: bundle.planned_policy(a.spec.policy) for a in agents.values()}
    plan = Plan(
        workload=name,
        params=params,
        steps=steps,
        agents=agents,
        pools=bundle.planned_pools(agents.values()),
        policies=dict(sorted(policies.items())),
    )
    return plan.sealed(), []


def _selected(bundle: Bundle, workload: str | None, has_overrides: bool) -> list[str]:
    names = bundle.catalog.names("Workload")
    if workload is None:
        if has_overrides and len(names) > 1:
            raise UsageError("--param needs --workload when there are several workloads")
        return names
    if workload not in names and bundle.catalog.is_declared("Workload", workload):
        return []  # declared but invalid: its own errors say why
    return [workload]


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a compile, back on (if it was) after.

    Loading and compiling build objects that all live on (source locations, models,
    the plan), so the collector's full passes found nothing to free yet took 40% of a
    10,000-step compile; paused, peak memory grew by 5%. Process-wide: another thread
    meanwhile runs without the collector for the compile's duration too.

    Back on, the first collection would walk every object the compile made (all still
    in the youngest generation: 7% of a 10,000-step compile, freeing next to nothing),
    so they are moved to the oldest generation first (``_settled``), to be walked by
    the next full collection as any long-lived object is.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _settled()
            gc.enable()


def _settled() -> None:
    """Every tracked object moved to the oldest generation, without a collection.

    ``gc.freeze`` moves all objects to the permanent generation (and clears the young
    count), ``gc.unfreeze`` moves them all to the oldest one, where they stay collectable.
    Not done if anything else has frozen objects: those must stay frozen.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


def compile_paths(
    paths: Iterable[str],
    workload: str | None = None,
    overrides: Mapping[str, JsonValue] | None = None,
    lock: ToolLock | None = None,
) -> tuple[Bundle, list[Plan]]:
    """Compile every workload under ``paths`` (or only ``workload``); raise on any problem."""
    with collector_paused():
        return _compile_paths(paths, workload, overrides, lock)


def _compile_paths(
    paths: Iterable[str],
    workload: str | None,
    overrides: Mapping[str, JsonValue] | None,
    lock: ToolLock | None,
) -> tuple[Bundle, list[Plan]]:
    bundle = load_bundle(paths, lock)
    names = _selected(bundle, workload, bool(overrides))
    plans: list[Plan] = []
    problems: list[Diagnostic] = list(bundle.problems)
    for name in names:
        plan, found = compile_workload(bundle, name, overrides)
        problems.extend(found)
        if plan is not None:
            plans.append(plan)
    if problems:
        raise ConfigError(problems)
    return bundle, plans

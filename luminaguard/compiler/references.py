"""Checking that every reference between documents names something that exists."""

from __future__ import annotations

from collections.abc import Iterator

from luminaguard.compiler.catalog import Catalog
from luminaguard.config.diagnostics import Diagnostic
from luminaguard.config.location import NodePath
from luminaguard.config.models import (
    AgentDocument,
    PolicyDocument,
    PolicyTestDocument,
    PoolDocument,
    WorkloadDocument,
)
from luminaguard.config.models.policy_test import DEFAULT_RULE, UNDECIDABLE_RULE
from luminaguard.config.validate import Document, did_you_mean
from luminaguard.policy.matchers import glob_regex


def _missing(
    catalog: Catalog, document: Document, path: NodePath, kind: str, name: str | None
) -> Iterator[Diagnostic]:
    if name is None or catalog.get(kind, name) is not None or catalog.is_declared(kind, name):
        return
    known = catalog.names(kind)
    hint = did_you_mean(name, known) or (f" (defined: {', '.join(known)})" if known else "")
    where = document.source.locations.value(path)
    yield Diagnostic(where, f"undefined {kind} {name!r}{hint}")


def _pool(catalog: Catalog, document: Document) -> Iterator[Diagnostic]:
    assert isinstance(document.model, PoolDocument)
    yield from _missing(catalog, document, ("spec", "image"), "Image", document.model.spec.image)


def _agent(catalog: Catalog, document: Document) -> Iterator[Diagnostic]:
    assert isinstance(document.model, AgentDocument)
    spec = document.model.spec
    yield from _missing(catalog, document, ("spec", "policy"), "Policy", spec.policy)
    yield from _missing(catalog, document, ("spec", "pool"), "Pool", spec.pool)
    yield from _missing(catalog, document, ("spec", "image"), "Image", spec.image)


def _policy(catalog: Catalog, document: Document) -> Iterator[Diagnostic]:
    assert isinstance(document.model, PolicyDocument)
    first: dict[str, int] = {}
    for index, rule in enumerate(document.model.spec.rules):
        if rule.id in first:
            where = document.source.locations.value(("spec", "rules", index, "id"))
            origin = document.source.locations.value(("spec", "rules", first[rule.id], "id"))
            yield Diagnostic(where, f"duplicate rule id {rule.id!r} (first used at {origin})")
        first.setdefault(rule.id, index)


def _call(catalog: Catalog, document: Document, index: int) -> Iterator[Diagnostic]:
    assert isinstance(document.model, WorkloadDocument)
    step = document.model.spec.steps[index]
    agent = catalog.agent(step.agent)
    if step.call is None or agent is None:
        return
    where = document.source.locations.value(("spec", "steps", index, "call"))
    server = agent.spec.mcp_servers.get(step.server or "")
    if server is None:
        known = sorted(agent.spec.mcp_servers)
        hint = did_you_mean(step.server or "", known) or f" (servers: {', '.join(known) or 'none'})"
        yield Diagnostic(
            where, f"agent {agent.metadata.name!r} has no MCP server {step.server!r}{hint}"
        )
    elif server.tools is not None and not glob_regex(server.tools or ["\0"]).match(step.tool or ""):
        allowed = ", ".join(server.tools) or "none"
        message = (
            f"tool {step.tool!r} is not in the allow-list of server {step.server!r} ({allowed})"
        )
        yield Diagnostic(where, message)


def _workload(catalog: Catalog, document: Document) -> Iterator[Diagnostic]:
    assert isinstance(document.model, WorkloadDocument)
    for index, step in enumerate(document.model.spec.steps):
        yield from _missing(
            catalog, document, ("spec", "steps", index, "agent"), "Agent", step.agent
        )
        yield from _call(catalog, document, index)


def _policy_test(catalog: Catalog, document: Document) -> Iterator[Diagnostic]:
    assert isinstance(document.model, PolicyTestDocument)
    name = document.model.spec.policy
    yield from _missing(catalog, document, ("spec", "policy"), "Policy", name)
    policy = catalog.policy(name)
    if policy is None:
        return
    ids = [rule.id for rule in policy.spec.rules]
    for index, case in enumerate(document.model.spec.tests):
        rule = case.expect.rule
        if rule is not None and rule not in (DEFAULT_RULE, UNDECIDABLE_RULE) and rule not in ids:
            where = document.source.locations.value(("spec", "tests", index, "expect", "rule"))
            hint = did_you_mean(rule, ids) or f" (rules: {', '.join(ids) or 'none'})"
            yield Diagnostic(where, f"policy {name!r} has no rule {rule!r}{hint}")


_CHECKS = {
    "Pool": _pool,
    "Agent": _agent,
    "Policy": _policy,
    "Workload": _workload,
    "PolicyTest": _policy_test,
}


def check_references(catalog: Catalog) -> list[Diagnostic]:
    """Every dangling reference, unknown MCP server or disallowed tool in the catalog."""
    problems: list[Diagnostic] = []
    for kind, check in _CHECKS.items():
        for document in catalog.by_kind.get(kind, {}).values():
            problems.extend(check(catalog, document))
    return problems

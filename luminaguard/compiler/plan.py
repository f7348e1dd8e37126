"""The plan: pure data, deterministic JSON, and a content hash over what it means.

The hash covers every semantic field and leaves out where things came from
(``source`` fields: file, line, column), so reformatting the YAML keeps the hash
and any change of meaning changes it.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from luminaguard.config.models.agent import AgentSpec
from luminaguard.config.models.infra import ImageSpec, PoolSpec
from luminaguard.config.models.policy import PolicySpec
from luminaguard.policy.action import Action, Decision


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlannedStep(_Frozen):
    """One step of the plan, classified unless its arguments are known only at run time."""

    order: int
    id: str
    agent: str
    action: Action
    needs: list[str]
    when: str | None = None
    retries: int = 0
    timeout: float | None = None
    idempotent: bool = False
    runtime: bool = Field(description="arguments known only at run time: classified before running")
    decision: Decision | None = None
    locked_tool: dict[str, Any] | None = Field(
        default=None, description="the called tool as locked: annotations and hashes"
    )
    source: str = Field(description="FILE:LINE:COL of the step")

    @property
    def risk(self) -> str:
        """``green``, ``red``, or ``runtime`` when decided at run time."""
        return self.decision.risk if self.decision else "runtime"


class PlannedAgent(_Frozen):
    """An agent with the image its VM runs resolved (its own, or its pool's).

    A pooled agent's pool is in the plan's ``pools``, under ``spec.pool``.
    """

    spec: AgentSpec
    image: ImageSpec | None = None
    source: str
    base_dir: str = Field(default=".", description="folder that relative mount sources start from")


class PlannedPool(_Frozen):
    """A warm pool the plan's agents take VMs from, with its image resolved.

    A run configures each pool once on its backend, from this alone: nothing of the
    agents that use it is in here.
    """

    spec: PoolSpec
    image: ImageSpec
    source: str
    base_dir: str = Field(
        default=".",
        description="the Image document's folder, where the search for its recipe starts",
    )


class PlannedPolicy(_Frozen):
    """A policy the plan's agents use, kept for run-time classification."""

    spec: PolicySpec
    rule_sources: list[str]
    source: str


_LOCATIONS: dict[str, Any] = {
    "hash": True,
    "steps": {"__all__": {"source": True, "decision": {"source"}}},
    "agents": {"__all__": {"source", "base_dir"}},
    "pools": {"__all__": {"source", "base_dir"}},
    "policies": {"__all__": {"source", "rule_sources"}},
    "sources": True,
}


def file_of(source: str) -> str:
    """The file of a ``FILE:LINE`` or ``FILE:LINE:COL`` source."""
    return re.sub(r"(:\d+)+$", "", source)


class Plan(_Frozen):
    """A compiled workload: ordered, classified steps and everything needed to run them."""

    format: Literal["luminaguard.dev/v1/plan"] = "luminaguard.dev/v1/plan"
    workload: str
    params: dict[str, JsonValue]
    steps: list[PlannedStep]
    agents: dict[str, PlannedAgent]
    pools: dict[str, PlannedPool] = Field(default_factory=dict)
    policies: dict[str, PlannedPolicy]
    sources: dict[str, str] = Field(
        default_factory=dict,
        description="the source revision of each document file the plan was compiled from"
        " (a reconciler's plans; not hashed: a new revision of the same content is the"
        " same plan)",
    )
    hash: str = ""

    def revision_of(self, source: str) -> str | None:
        """The revision of the document at ``source`` (``FILE:LINE``), if recorded."""
        return self.sources.get(file_of(source))

    def files(self) -> set[str]:
        """Every document file the plan was compiled from (its sources' files)."""
        sources = [s.source for s in self.steps] + [a.source for a in self.agents.values()]
        sources += [p.source for p in self.pools.values()]
        sources += [p.source for p in self.policies.values()]
        return {file_of(source) for source in sources}

    def semantic_content(self) -> dict[str, Any]:
        """The plan without its hash and without source locations."""
        return self.model_dump(mode="json", exclude=_LOCATIONS)

    def compute_hash(self) -> str:
        """SHA-256 of the canonical JSON of ``semantic_content``."""
        text = json.dumps(
            self.semantic_content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def sealed(self) -> Plan:
        """A copy of the plan with its ``hash`` field set."""
        return self.model_copy(update={"hash": self.compute_hash()})

    def to_json(self) -> str:
        """Deterministic, indented JSON (keys sorted), ending in a newline."""
        return (
            json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=False)
            + "\n"
        )

    def counts(self) -> dict[str, int]:
        """How many steps are green, red and decided at run time."""
        totals = {"green": 0, "red": 0, "runtime": 0}
        for step in self.steps:
            totals[step.risk] += 1
        return totals

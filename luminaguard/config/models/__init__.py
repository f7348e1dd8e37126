"""Typed, frozen models of the kinds; the source of the JSON Schemas in schemas/.

Names are imported on first use: a plan (``compiler.plan``) needs only some kinds' models,
and the run store reads plans on every command.
"""

from __future__ import annotations

from luminaguard.lazy import exports

TYPE_CHECKING = False  # mypy treats this name as true
if TYPE_CHECKING:
    from luminaguard.config.models.agent import AgentSpec, Limits, McpServer
    from luminaguard.config.models.common import API_VERSION, Metadata, Risk, SecretRef
    from luminaguard.config.models.documents import (
        KINDS,
        AgentDocument,
        AnyDocument,
        ImageDocument,
        PolicyDocument,
        PolicyTestDocument,
        PoolDocument,
        WorkloadDocument,
    )
    from luminaguard.config.models.infra import ImageSpec, PoolSpec
    from luminaguard.config.models.policy import Match, PolicySpec, Rule, ValueMatch
    from luminaguard.config.models.workload import Step, WorkloadSpec

__all__ = [
    "API_VERSION",
    "KINDS",
    "AgentDocument",
    "AgentSpec",
    "AnyDocument",
    "ImageDocument",
    "ImageSpec",
    "Limits",
    "Match",
    "McpServer",
    "Metadata",
    "PolicyDocument",
    "PolicySpec",
    "PolicyTestDocument",
    "PoolDocument",
    "PoolSpec",
    "Risk",
    "Rule",
    "SecretRef",
    "Step",
    "ValueMatch",
    "WorkloadDocument",
    "WorkloadSpec",
]
__getattr__ = exports(
    __name__,
    {
        "API_VERSION": "luminaguard.config.models.common",
        "KINDS": "luminaguard.config.models.documents",
        "AgentDocument": "luminaguard.config.models.documents",
        "AgentSpec": "luminaguard.config.models.agent",
        "AnyDocument": "luminaguard.config.models.documents",
        "ImageDocument": "luminaguard.config.models.documents",
        "ImageSpec": "luminaguard.config.models.infra",
        "Limits": "luminaguard.config.models.agent",
        "Match": "luminaguard.config.models.policy",
        "McpServer": "luminaguard.config.models.agent",
        "Metadata": "luminaguard.config.models.common",
        "PolicyDocument": "luminaguard.config.models.documents",
        "PolicySpec": "luminaguard.config.models.policy",
        "PolicyTestDocument": "luminaguard.config.models.documents",
        "PoolDocument": "luminaguard.config.models.documents",
        "PoolSpec": "luminaguard.config.models.infra",
        "Risk": "luminaguard.config.models.common",
        "Rule": "luminaguard.config.models.policy",
        "SecretRef": "luminaguard.config.models.common",
        "Step": "luminaguard.config.models.workload",
        "ValueMatch": "luminaguard.config.models.policy",
        "WorkloadDocument": "luminaguard.config.models.documents",
        "WorkloadSpec": "luminaguard.config.models.workload",
    },
)

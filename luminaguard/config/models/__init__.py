"""Typed, frozen models of the kinds; the source of the JSON Schemas in schemas/."""

from __future__ import annotations

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

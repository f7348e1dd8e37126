"""The document envelope of each kind (apiVersion, kind, metadata, spec) and their registry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from luminaguard.config.models.agent import AgentSpec
from luminaguard.config.models.common import Metadata, Model
from luminaguard.config.models.infra import ImageSpec, PoolSpec
from luminaguard.config.models.policy import PolicySpec
from luminaguard.config.models.policy_test import PolicyTestSpec
from luminaguard.config.models.workload import WorkloadSpec

ApiVersion = Literal["luminaguard.dev/v1"]


class ImageDocument(Model):
    """A guest image."""

    api_version: ApiVersion = Field(alias="apiVersion")
    kind: Literal["Image"]
    metadata: Metadata
    spec: ImageSpec


class PoolDocument(Model):
    """A pool of warm micro-VMs."""

    api_version: ApiVersion = Field(alias="apiVersion")
    kind: Literal["Pool"]
    metadata: Metadata
    spec: PoolSpec


class AgentDocument(Model):
    """An agent."""

    api_version: ApiVersion = Field(alias="apiVersion")
    kind: Literal["Agent"]
    metadata: Metadata
    spec: AgentSpec


class PolicyDocument(Model):
    """An action-risk policy."""

    api_version: ApiVersion = Field(alias="apiVersion")
    kind: Literal["Policy"]
    metadata: Metadata
    spec: PolicySpec


class WorkloadDocument(Model):
    """A workload."""

    api_version: ApiVersion = Field(alias="apiVersion")
    kind: Literal["Workload"]
    metadata: Metadata
    spec: WorkloadSpec


class PolicyTestDocument(Model):
    """Tests of a policy: actions and the risk (and rule) it must give them."""

    api_version: ApiVersion = Field(alias="apiVersion")
    kind: Literal["PolicyTest"]
    metadata: Metadata
    spec: PolicyTestSpec


AnyDocument = (
    ImageDocument
    | PoolDocument
    | AgentDocument
    | PolicyDocument
    | WorkloadDocument
    | PolicyTestDocument
)

#: Every kind by name, in the order their documents are listed.
KINDS: dict[str, type[AnyDocument]] = {
    "Image": ImageDocument,
    "Pool": PoolDocument,
    "Agent": AgentDocument,
    "Policy": PolicyDocument,
    "Workload": WorkloadDocument,
    "PolicyTest": PolicyTestDocument,
}

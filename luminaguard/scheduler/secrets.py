"""Secrets: references resolved from the runner's environment, never written anywhere."""

from __future__ import annotations

import os
from collections.abc import Mapping

from luminaguard.compiler.plan import Plan, PlannedAgent
from luminaguard.config.models import SecretRef
from luminaguard.scheduler.templates import StepError


def secret_references(agent: PlannedAgent, environ: Mapping[str, str]) -> dict[str, str]:
    """The agent's secret references that are set: environment variable -> value."""
    refs = [v for v in agent.spec.env.values() if isinstance(v, SecretRef)]
    for server in agent.spec.mcp_servers.values():
        refs += [
            v for v in (*server.env.values(), *server.headers.values()) if isinstance(v, SecretRef)
        ]
    return {ref.from_env: environ[ref.from_env] for ref in refs if ref.from_env in environ}


def run_secrets(plan: Plan, environ: Mapping[str, str]) -> dict[str, str]:
    """Every secret of the plan's agents that is set: environment variable -> value."""
    return {
        name: value
        for agent in plan.agents.values()
        for name, value in secret_references(agent, environ).items()
    }


def resolve(
    values: Mapping[str, str | SecretRef], environ: Mapping[str, str], what: str
) -> dict[str, str]:
    """Plain values as written; secret references looked up in the runner's environment."""
    resolved: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, SecretRef):
            if value.from_env not in environ:
                missing = f"secret {value.from_env!r} for {what} {key}"
                raise StepError(f"{missing} is not set in the runner's environment")
            resolved[key] = environ[value.from_env]
        else:
            resolved[key] = value
    return resolved


def environment() -> Mapping[str, str]:
    """The runner's environment, where secret references are looked up."""
    return os.environ

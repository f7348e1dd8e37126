"""Each layer's public names are exactly what is meant to be public."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "luminaguard": ["__version__"],
    "luminaguard.config": [
        "ConfigError",
        "Diagnostic",
        "Document",
        "LoadResult",
        "LocationIndex",
        "SourceLocation",
        "load_documents",
    ],
    "luminaguard.compiler": [
        "Bundle",
        "Plan",
        "PlannedAgent",
        "PlannedPolicy",
        "PlannedPool",
        "PlannedStep",
        "compile_paths",
        "compile_workload",
        "load_bundle",
        "load_checked",
    ],
    "luminaguard.policy": ["ANNOTATION_DEFAULTS", "Action", "Decision", "PolicyEngine"],
    "luminaguard.transport": ["ToolClient", "ToolInfo", "ToolResult", "TransportError"],
    "luminaguard.hypervisor": [
        "Availability",
        "Backend",
        "BackendError",
        "ExecResult",
        "Mount",
        "PoolConfig",
        "SandboxHandle",
        "SandboxProcess",
        "SandboxSpec",
        "VmShape",
        "backend",
        "report",
    ],
    "luminaguard.scheduler": [
        "ApprovalState",
        "Outcome",
        "RunResult",
        "RunState",
        "RunStore",
        "Runner",
        "StateError",
        "StepError",
        "StepState",
    ],
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_public_api(module: str) -> None:
    imported = importlib.import_module(module)
    assert sorted(imported.__all__) == sorted(EXPECTED[module])
    for name in imported.__all__:
        assert getattr(imported, name).__doc__ or name == "__version__"


@pytest.mark.parametrize("module", ["luminaguard.hypervisor", "luminaguard.scheduler"])
def test_a_lazy_package_refuses_names_it_does_not_export(module: str) -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        assert importlib.import_module(module).Nothing is None

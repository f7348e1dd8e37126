"""The compiler: resolve references, build the step DAG, classify, emit a Plan."""

from __future__ import annotations

from luminaguard.compiler.compile import (
    Bundle,
    compile_paths,
    compile_workload,
    load_bundle,
    load_checked,
)
from luminaguard.compiler.plan import Plan, PlannedAgent, PlannedPolicy, PlannedPool, PlannedStep

__all__ = [
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
]

"""The compiler: resolve references, build the step DAG, classify, emit a Plan.

Names are imported on first use: the run store reads plans (``compiler.plan``) on every
command, and must not load the whole compiler (templates, schemas, the MCP types) with it.
"""

from __future__ import annotations

from luminaguard.lazy import exports

TYPE_CHECKING = False  # mypy treats this name as true
if TYPE_CHECKING:
    from luminaguard.compiler.compile import (
        Bundle,
        compile_paths,
        compile_workload,
        load_bundle,
        load_checked,
    )
    from luminaguard.compiler.plan import (
        Plan,
        PlannedAgent,
        PlannedPolicy,
        PlannedPool,
        PlannedStep,
    )

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
__getattr__ = exports(
    __name__,
    {
        **dict.fromkeys(
            ("Bundle", "compile_paths", "compile_workload", "load_bundle", "load_checked"),
            "luminaguard.compiler.compile",
        ),
        **dict.fromkeys(
            ("Plan", "PlannedAgent", "PlannedPolicy", "PlannedPool", "PlannedStep"),
            "luminaguard.compiler.plan",
        ),
    },
)

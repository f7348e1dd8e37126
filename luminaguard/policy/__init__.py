"""The policy layer: classify actions Green or Red with ordered rules.

Names are imported on first use: a plan's decisions (``policy.action``) are read by
commands that never decide, and must not load the engine and the shell parser with them.
"""

from __future__ import annotations

from luminaguard.lazy import exports

TYPE_CHECKING = False  # mypy treats this name as true
if TYPE_CHECKING:
    from luminaguard.policy.action import ANNOTATION_DEFAULTS, Action, Decision
    from luminaguard.policy.engine import PolicyEngine

__all__ = ["ANNOTATION_DEFAULTS", "Action", "Decision", "PolicyEngine"]
__getattr__ = exports(
    __name__,
    {
        "ANNOTATION_DEFAULTS": "luminaguard.policy.action",
        "Action": "luminaguard.policy.action",
        "Decision": "luminaguard.policy.action",
        "PolicyEngine": "luminaguard.policy.engine",
    },
)

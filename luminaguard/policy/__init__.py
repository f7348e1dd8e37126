"""The policy layer: classify actions Green or Red with ordered rules."""

from __future__ import annotations

from luminaguard.policy.action import ANNOTATION_DEFAULTS, Action, Decision
from luminaguard.policy.engine import PolicyEngine

__all__ = ["ANNOTATION_DEFAULTS", "Action", "Decision", "PolicyEngine"]

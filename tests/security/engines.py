"""The policies the shell-gate attacks are decided by: the starter set and example 04's."""

from __future__ import annotations

from luminaguard.compiler.compile import load_checked
from luminaguard.policy.engine import PolicyEngine
from tests.conftest import ROOT


def starter() -> PolicyEngine:
    """The shipped starter policy."""
    return load_checked([str(ROOT / "policies")]).engine("starter")


def reporting() -> PolicyEngine:
    """Example 04's ``reporting`` policy."""
    return load_checked([str(ROOT / "examples" / "04-sandbox-report")]).engine("reporting")

"""``PoliciesInForce``: the policies a server enforces, swapped whole, never mixed.

A reconciler builds a ``PolicySet`` -- every policy of one source revision, each with
its engine -- and swaps it in with one assignment. A decision reads the current set
once and decides with it alone, so a decision made while the policies change is made
entirely by the old set or entirely by the new one, and it names the revision of the
set that made it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from luminaguard.config.models import PolicySpec
from luminaguard.errors import UsageError
from luminaguard.policy.action import Action, Decision
from luminaguard.policy.engine import PolicyEngine


def policy_hash(spec: PolicySpec | Mapping[str, Any]) -> str:
    """SHA-256 of a policy spec's canonical JSON (the same for a model and its dump)."""
    value = spec.model_dump(mode="json") if isinstance(spec, PolicySpec) else dict(spec)
    value = PolicySpec.model_validate(value).model_dump(mode="json")
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PolicySet:
    """Every policy of one revision, ready to decide."""

    revision: str
    engines: Mapping[str, PolicyEngine] = field(default_factory=dict)
    hashes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, revision: str, specs: Mapping[str, Mapping[str, Any]]) -> PolicySet:
        """The set of these policy specs (as documents hold them) at ``revision``."""
        engines, hashes = {}, {}
        for name, spec in specs.items():
            model = PolicySpec.model_validate(dict(spec))
            source = f"{name}@{revision}"
            engines[name] = PolicyEngine(name, model, [source] * len(model.rules), source)
            hashes[name] = policy_hash(model)
        return cls(revision, engines, hashes)

    def decide(self, policy: str, action: Action) -> Decision:
        """The named policy's decision (``UsageError`` if the set has no such policy)."""
        engine = self.engines.get(policy)
        if engine is None:
            known = ", ".join(sorted(self.engines)) or "none"
            raise UsageError(f"no policy {policy!r} in force (in force: {known})")
        return engine.decide(action)


class PoliciesInForce:
    """The current ``PolicySet``; see the module's docstring."""

    def __init__(self, initial: PolicySet | None = None) -> None:
        self._set = initial or PolicySet("")
        self._swapping = threading.Lock()

    def current(self) -> PolicySet:
        """The set in force now (one read: whatever is swapped in later, this one stays)."""
        return self._set

    def swap(self, new: PolicySet) -> PolicySet:
        """Put ``new`` in force; the set it replaces."""
        with self._swapping:  # swaps in order; readers never wait
            old, self._set = self._set, new
        return old

    def decide(self, policy: str, action: Action) -> tuple[Decision, str]:
        """The decision of the set in force now, and that set's revision."""
        in_force = self.current()
        return in_force.decide(policy, action), in_force.revision

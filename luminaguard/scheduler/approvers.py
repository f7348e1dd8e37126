"""Who may decide a Red step: the approvers a policy names, and not the run's starter.

The deciding rule's ``approvers`` (or else its policy's ``approval.approvers``) list the
names that may approve or deny; an empty list lets anyone decide. ``prevent_self_approval``
(on the policy's ``approval``, or on the rule; either one requires it) keeps the person
who started the run from approving its steps. The terms travel on the approval card, so
the audited ``approval.requested`` record says who may decide.

Names are what people say they are (``--as``, ``$LUMINAGUARD_USER`` or the login name);
the starter's login name is recorded too, so that a starter cannot approve as their
login name either.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from luminaguard.compiler.plan import Plan
from luminaguard.policy.action import Decision


def login_name() -> str:
    """The operating system's name for the user running this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER
        return f"uid-{os.getuid()}"


def person() -> str:
    """The name of the person at the keyboard: ``$LUMINAGUARD_USER`` or the login name."""
    return os.environ.get("LUMINAGUARD_USER") or login_name()


def starter() -> dict[str, str]:
    """Who starts a run, as recorded with it: the person's name and the login name."""
    return {"name": person(), "login": login_name()}


@dataclass(frozen=True)
class ApprovalTerms:
    """Who may decide one approval request."""

    approvers: tuple[str, ...] = ()
    prevent_self_approval: bool = False

    def refusal(self, who: str, started_by: Mapping[str, Any], approving: bool) -> str | None:
        """Why ``who`` may not make this decision (None when they may)."""
        if self.approvers and who not in self.approvers:
            listed = ", ".join(self.approvers)
            return f"{who!r} is not among the approvers of this step ({listed})"
        starters = {str(v) for v in started_by.values() if v}
        if approving and self.prevent_self_approval and who in starters:
            return f"{who!r} started this run and may not approve its steps (prevent_self_approval)"
        return None

    def card(self) -> dict[str, Any]:
        """The terms as shown on (and audited with) the approval card."""
        return {
            "approvers": list(self.approvers),
            "prevent_self_approval": self.prevent_self_approval,
        }

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> ApprovalTerms:
        """The terms a card carries (none on cards made before terms existed)."""
        return cls(
            tuple(str(name) for name in card.get("approvers") or ()),
            bool(card.get("prevent_self_approval")),
        )


def terms_of(plan: Plan, decision: Decision) -> ApprovalTerms:
    """The terms of the rule that decided (or else of its policy's ``approval``)."""
    spec = plan.policies[decision.policy].spec
    rule = next((r for r in spec.rules if r.id == decision.rule), None)
    approvers = (rule.approvers if rule else []) or spec.approval.approvers
    prevent = spec.approval.prevent_self_approval or bool(rule and rule.prevent_self_approval)
    return ApprovalTerms(tuple(approvers), prevent)

"""Who may decide a Red step: the approvers a policy names, and not the run's starter.

The deciding rule's ``approvers`` (or else its policy's ``approval.approvers``) list the
names that may approve or deny (``role:NAME`` stands for anyone whose token has that
role); an empty list lets anyone decide. ``min_approvals`` (the rule's, or else the
policy's) is how many distinct approvers must approve; one denial denies. ``prevent_self_approval``
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TYPE_CHECKING = False  # mypy treats this name as true
if TYPE_CHECKING:
    from luminaguard.compiler.plan import Plan  # pydantic models: not for every command
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


ROLE = "role:"
#: The keys of a run's ``started_by`` that name its starter (``via`` says how, not who).
_STARTER_KEYS = ("name", "login")


@dataclass(frozen=True)
class ApprovalTerms:
    """Who may decide one approval request, and how many distinct approvers approve it."""

    approvers: tuple[str, ...] = ()
    prevent_self_approval: bool = False
    min_approvals: int = 1

    def listed(self, who: str, role: str | None) -> bool:
        """Whether ``who`` (holding ``role``, if known) is among the approvers (or all are)."""
        if not self.approvers or who in self.approvers:
            return True
        return role is not None and f"{ROLE}{role}" in self.approvers

    def refusal(
        self, who: str, started_by: Mapping[str, Any], approving: bool, role: str | None = None
    ) -> str | None:
        """Why ``who`` (with ``role``) may not make this decision (None when they may)."""
        if not self.listed(who, role):
            listed = ", ".join(self.approvers)
            held = f"; nor is their role {role!r}" if role and ROLE in listed else ""
            return f"{who!r} is not among the approvers of this step ({listed}){held}"
        starters = {str(started_by[key]) for key in _STARTER_KEYS if started_by.get(key)}
        if approving and self.prevent_self_approval and who in starters:
            return f"{who!r} started this run and may not approve its steps (prevent_self_approval)"
        return None

    def card(self) -> dict[str, Any]:
        """The terms as shown on (and audited with) the approval card."""
        return {
            "approvers": list(self.approvers),
            "prevent_self_approval": self.prevent_self_approval,
            "min_approvals": self.min_approvals,
        }

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> ApprovalTerms:
        """The terms a card carries (none on cards made before terms existed)."""
        return cls(
            tuple(str(name) for name in card.get("approvers") or ()),
            bool(card.get("prevent_self_approval")),
            max(1, int(card.get("min_approvals") or 1)),
        )


def terms_of(plan: Plan, decision: Decision) -> ApprovalTerms:
    """The terms of the rule that decided (or else of its policy's ``approval``)."""
    spec = plan.policies[decision.policy].spec
    rule = next((r for r in spec.rules if r.id == decision.rule), None)
    approvers = (rule.approvers if rule else []) or spec.approval.approvers
    prevent = spec.approval.prevent_self_approval or bool(rule and rule.prevent_self_approval)
    needed = (rule.min_approvals if rule else None) or spec.approval.min_approvals
    return ApprovalTerms(tuple(approvers), prevent, needed)


def distinct_approvers(
    terms: ApprovalTerms, votes: Sequence[tuple[str, str | None]], started_by: Mapping[str, Any]
) -> list[str]:
    """The distinct names among ``votes`` (name, role) the terms allow to approve, in order."""
    names: list[str] = []
    for who, role in votes:
        if who not in names and terms.refusal(who, started_by, True, role) is None:
            names.append(who)
    return names

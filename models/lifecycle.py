"""The onboarding lifecycle: its stages, the actions that move a request between them,
and who takes them."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    SUBMITTED = "submitted"
    LEAD_OPEN = "lead_open"
    OPPORTUNITY_OPEN = "opportunity_open"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def decided(self) -> bool:
        return self in (Stage.APPROVED, Stage.REJECTED)


class Action(StrEnum):
    QUALIFY = "qualify"
    CANCEL = "cancel"
    WON = "won"
    LOST = "lost"
    APPROVE = "approve"
    REJECT = "reject"


class Role(StrEnum):
    """Who decides: a user's role in `API_TOKENS`."""

    SALES_REP = "sales_rep"
    COMMERCE_ADMIN = "commerce_admin"


class ProspectStatus(StrEnum):
    """The Commerce prospect's `status`: how *All prospects* shows a request's stage."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


ALLOWED_ACTIONS: dict[Stage, frozenset[Action]] = {
    Stage.SUBMITTED: frozenset(),
    Stage.LEAD_OPEN: frozenset({Action.QUALIFY, Action.CANCEL}),
    Stage.OPPORTUNITY_OPEN: frozenset({Action.WON, Action.LOST}),
    Stage.AWAITING_APPROVAL: frozenset({Action.APPROVE, Action.REJECT}),
    Stage.APPROVED: frozenset(),
    Stage.REJECTED: frozenset(),
}

"""The re-apply policy: whether an email may apply, judged from its requests in Commerce.

After a rejection, the same email may apply again once `REAPPLY_COOLDOWN` has passed
since the decision; a request that expired (rejected by the system, reason code
`expired`) has no cool-down, as its rejection email tells the requester. An email whose
request was approved is already a partner: it signs in instead. An email with an
undecided request passes: the submission answers with that request (the duplicate path).

The API, the form and the command line ask `check_may_apply` before `client.requests.submit`,
so that nothing (workflow, row, email) is created for a refused submission.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from models.commerce import Prospect
from models.lifecycle import ProspectStatus, ReasonCode


class ApplyRefused(Exception):
    """A submission the policy refuses; `reason` tells the kinds apart for scripts, and
    `onboarding_id` names the email's decided request (its address is told by email)."""

    reason: ClassVar[str]
    onboarding_id: str
    may_apply_from: datetime | None = None


class CoolingDown(ApplyRefused):
    """Rejected less than `REAPPLY_COOLDOWN` ago: the email may apply from `may_apply_from`."""

    reason = "reapply_cooldown"

    def __init__(self, may_apply_from: datetime, onboarding_id: str) -> None:
        super().__init__(
            "this email's last request was turned down; it may apply again from "
            f"{may_apply_from.isoformat(timespec='seconds')}"
        )
        self.may_apply_from = may_apply_from
        self.onboarding_id = onboarding_id


class AlreadyPartner(ApplyRefused):
    """The email's request was approved: it is a partner, and signs in instead."""

    reason = "already_partner"

    def __init__(self, signin_url: str, onboarding_id: str) -> None:
        super().__init__(f"this email is already a partner's: sign in at {signin_url}")
        self.signin_url = signin_url
        self.onboarding_id = onboarding_id


def check_may_apply(
    commerce: Engine,
    email: str,
    cooldown: timedelta,
    site_url: str,
    submission: str | None = None,
    now: datetime | None = None,
) -> None:
    """Raise ApplyRefused if `email` may not apply now; return if it may.

    `submission` is the onboarding id this submission would have (from its idempotency
    key): the same submission sent again after its request was decided answers as it
    did the first time, so it passes.
    """
    last = last_decided_request(commerce, email)
    if last is None or last.onboarding_id == submission:
        return
    if last.status == ProspectStatus.APPROVED:
        raise AlreadyPartner(f"{site_url.rstrip('/')}/signin", last.onboarding_id)
    may_apply_from = may_apply_again_from(last, cooldown)
    if may_apply_from is not None and (now or datetime.now(UTC)) < may_apply_from:
        raise CoolingDown(may_apply_from, last.onboarding_id)


def open_request(commerce: Engine, email: str) -> str | None:
    """The onboarding id of the email's undecided request, if it has one."""
    try:
        with Session(commerce) as session:
            return session.exec(
                select(Prospect.onboarding_id).where(Prospect.undecided_email == email.lower())
            ).first()
    except DBAPIError:
        if not inspect(commerce).has_table(Prospect.__tablename__):
            return None
        raise


def may_apply_again_from(rejected: Prospect, cooldown: timedelta) -> datetime | None:
    """When the email of a `rejected` prospect may apply again; None: at once (the request
    expired, or there is no cool-down). The rejection email says the same."""
    if rejected.reason_code == ReasonCode.EXPIRED or rejected.decided_at is None or not cooldown:
        return None
    decided_at = rejected.decided_at
    return (decided_at if decided_at.tzinfo else decided_at.replace(tzinfo=UTC)) + cooldown


def last_decided_request(commerce: Engine, email: str) -> Prospect | None:
    """The email's newest decided prospect; None while it has an undecided one, or none."""
    try:
        with Session(commerce) as session:
            newest = session.exec(
                select(Prospect)
                .where(Prospect.email == email.lower())
                .order_by(col(Prospect.created_at).desc(), col(Prospect.id).desc())
                .limit(1)
            ).first()
    except DBAPIError:
        # A store no worker has set up yet (its first start migrates it) holds no request.
        if not inspect(commerce).has_table(Prospect.__tablename__):
            return None
        raise
    if newest is None or newest.status == ProspectStatus.PENDING:
        return None
    return newest

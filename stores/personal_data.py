"""A request's personal data anonymised in both stores, keeping the decision record.

Once a rejected request has been kept for PERSONAL_DATA_RETENTION, or a Commerce admin
erases a decided request's data on the requester's word, the requester's name, email,
phone, job title, comments, the company's address, phone and website as typed, and the
free text of decisions and notes are replaced or cleared everywhere the request wrote
them: Commerce's prospect, its customers, the outbox, the partner account an approval
gave the requester; Sales' lead, contact, account, opportunity and timeline. What stays
is the decision record: ids, dates, stages and statuses, each decision's actor and
reason code, and the company name; and who anonymised it, when, why and how (`kind`).

An approved partner's organisation (its customer and Sales account) is customer data:
an erasure leaves its address, phone and website, and takes the requester's own data.
The same function serves the workflow's activity and the client's erasure of a request
whose workflow has closed; it is idempotent, so a retried activity redoes nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from sqlmodel import Session, col, or_, select

from models.commerce import (
    AccessLink,
    Customer,
    EmailMessage,
    PartnerUser,
    Prospect,
    WebSession,
)
from models.lifecycle import ProspectStatus
from models.partners import LinkState, PartnerUserState
from models.personal_data import (
    ERASED,
    AnonymisationKind,
    AnonymiseRequestInput,
    RequestAnonymised,
)
from models.sales import (
    DECISION_NOTES,
    Account,
    Contact,
    Lead,
    Opportunity,
    TimelineNote,
    decision_note,
)
from stores.engine import one, transact

if TYPE_CHECKING:
    from stores import Stores

PERSON = "person"
PARTNER_SESSION = "partner"


class NoSuchRequest(LookupError):
    def __init__(self, onboarding_id: str) -> None:
        super().__init__(f"no onboarding request {onboarding_id}")
        self.onboarding_id = onboarding_id


class NotAnonymisable(Exception):
    """The request's state does not allow it: undecided, or (retention) not rejected."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


def anonymise_request(stores: Stores, input: AnonymiseRequestInput) -> RequestAnonymised:
    """Anonymise a decided request in Commerce, then in Sales (each its own transaction)."""
    rows: Counter[str] = Counter()
    done, approved = transact(stores.commerce, lambda session: _commerce(session, input, rows))
    transact(stores.sales, lambda session: _sales(session, input, approved, rows))
    return done.model_copy(update={"rows": dict(rows)})


def _commerce(
    session: Session, input: AnonymiseRequestInput, rows: Counter[str]
) -> tuple[RequestAnonymised, bool]:
    rows.clear()
    prospect = one(session, Prospect, onboarding_id=input.onboarding_id)
    if prospect is None:
        raise NoSuchRequest(input.onboarding_id)
    if prospect.status == ProspectStatus.PENDING:
        raise NotAnonymisable(
            f"request {input.onboarding_id} is undecided: its personal data is still needed",
            prospect.status,
        )
    approved = prospect.status == ProspectStatus.APPROVED
    if input.kind is AnonymisationKind.RETENTION and approved:
        raise NotAnonymisable(
            f"request {input.onboarding_id} is approved: its partner's data is customer data",
            prospect.status,
        )
    # The first anonymisation is the record, but an erasure on request is recorded as such.
    if prospect.anonymised_at is None or (
        input.kind is AnonymisationKind.ERASURE
        and prospect.anonymisation_kind != AnonymisationKind.ERASURE
    ):
        prospect.anonymised_at, prospect.anonymised_by = input.at, input.actor
        prospect.anonymisation_kind, prospect.anonymisation_reason = input.kind, input.reason
    prospect.first_name = prospect.last_name = prospect.email = ERASED
    prospect.undecided_email = None
    prospect.phone = prospect.job_title = prospect.comments = None
    prospect.company_address = prospect.company_phone = prospect.website = None
    prospect.decision_reason = prospect.internal_note = prospect.hold_note = None
    rows["prospect"] += 1

    person_ids = []
    for customer in session.exec(
        select(Customer).where(Customer.onboarding_id == input.onboarding_id)
    ):
        if customer.customer_type == PERSON:
            customer.name = customer.first_name = customer.last_name = ERASED
            customer.email = customer.phone = customer.job_title = None
            customer.address = customer.website = None
            person_ids.append(customer.id)
        elif not approved:
            customer.phone = customer.address = customer.website = None
        rows["customer"] += 1

    partner_user_ids = []
    for user in session.exec(
        select(PartnerUser).where(col(PartnerUser.customer_id).in_(person_ids))
    ):
        # The requester's own account: it goes with their data.
        user.email = f"erased-{user.id}@erased.invalid"
        user.first_name = user.last_name = ERASED
        user.job_title = user.password_hash = None
        if user.state != PartnerUserState.REMOVED:
            user.state = PartnerUserState.REMOVED.value
            user.removed_at, user.removed_by = input.at, input.actor
        for link in session.exec(
            select(AccessLink).where(
                AccessLink.partner_user_id == user.id, AccessLink.state == LinkState.VALID
            )
        ):
            link.state, link.ended_at = LinkState.SUPERSEDED.value, input.at
        for web_session in session.exec(
            select(WebSession).where(
                WebSession.kind == PARTNER_SESSION,
                WebSession.subject == str(user.id),
                col(WebSession.ended_at).is_(None),
            )
        ):
            web_session.ended_at = input.at
        partner_user_ids.append(user.id)
        rows["partner_user"] += 1

    for message in session.exec(
        select(EmailMessage).where(
            or_(
                col(EmailMessage.onboarding_id) == input.onboarding_id,
                col(EmailMessage.partner_user_id).in_(partner_user_ids),
            )
        )
    ):
        message.recipient = ERASED
        rows["email_message"] += 1

    return (
        RequestAnonymised(
            onboarding_id=input.onboarding_id,
            kind=AnonymisationKind(prospect.anonymisation_kind or input.kind),
            anonymised_at=prospect.anonymised_at,
            anonymised_by=prospect.anonymised_by,
            reason=prospect.anonymisation_reason or "",
        ),
        approved,
    )


def _sales(
    session: Session, input: AnonymiseRequestInput, approved: bool, rows: Counter[str]
) -> None:
    for table in ("lead", "contact", "account", "opportunity", "timeline_note"):
        rows.pop(table, None)
    lead = one(session, Lead, onboarding_id=input.onboarding_id)
    if lead is None:
        # The Sales integration was off for it: Commerce was all.
        return
    if lead.anonymised_at is None:
        lead.anonymised_at = input.at
    lead.first_name = lead.last_name = lead.email = ERASED
    lead.phone = lead.job_title = lead.comments = None
    lead.company_address = lead.company_phone = lead.website = None
    lead.decision_reason = lead.internal_note = None
    rows["lead"] += 1
    oid = input.onboarding_id
    for contact in session.exec(select(Contact).where(Contact.onboarding_id == oid)):
        contact.first_name = contact.last_name = contact.email = ERASED
        contact.phone = contact.job_title = None
        rows["contact"] += 1
    for account in session.exec(select(Account).where(Account.onboarding_id == oid)):
        if not approved:
            account.address = account.phone = account.website = None
        rows["account"] += 1
    for opportunity in session.exec(select(Opportunity).where(Opportunity.onboarding_id == oid)):
        opportunity.close_reason = opportunity.internal_note = None
        rows["opportunity"] += 1
    for note in session.exec(select(TimelineNote).where(TimelineNote.onboarding_id == oid)):
        # A decision's note quotes its reason, in which the requester may be named.
        if note.kind in DECISION_NOTES:
            note.text = decision_note(note.kind, note.author, None)
        rows["timeline_note"] += 1

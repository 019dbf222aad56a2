"""The read side of both stores: the views reps and admins work from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Engine, func
from sqlmodel import Session, SQLModel, col, select

from models.commerce import (
    Customer,
    CustomerHierarchy,
    CustomerHierarchyMember,
    EmailMessage,
    Prospect,
    ProspectTally,
)
from models.ids import onboarding_workflow_id
from models.lifecycle import (
    STAGES,
    TRANSITIONS,
    Action,
    ProspectStatus,
    Stage,
    decided_stage,
    recorded_decision,
)
from models.personal_data import AnonymisationKind, RequestAnonymised
from models.sales import (
    LEAD_SOURCE_COMMERCE_B2B,
    Account,
    Contact,
    Lead,
    LeadTally,
    Opportunity,
    OpportunityTally,
    TimelineNote,
)
from models.status import (
    DecisionRecord,
    EmailKind,
    HoldState,
    Notification,
    OnboardingStatus,
    RecordIds,
)

if TYPE_CHECKING:
    from stores import Stores

T = TypeVar("T", bound=SQLModel)

# The emails that tell the requester the decision: the status's `notification`.
DECISION_EMAILS = frozenset(info.ending_email for info in STAGES.values() if info.ending_email)
# Failed notifications an admin's overview lists, newest first.
FAILED_SHOWN = 20


def lead(sales: Engine, lead_id: int) -> Lead | None:
    with Session(sales) as session:
        return session.get(Lead, lead_id)


def timeline(sales: Engine, lead_id: int) -> list[TimelineNote]:
    with Session(sales) as session:
        query = select(TimelineNote).where(TimelineNote.lead_id == lead_id)
        return list(
            session.exec(query.order_by(col(TimelineNote.created_at), col(TimelineNote.id)))
        )


def opportunity(sales: Engine, opportunity_id: int) -> Opportunity | None:
    with Session(sales) as session:
        return session.get(Opportunity, opportunity_id)


def account(sales: Engine, account_id: int) -> Account | None:
    with Session(sales) as session:
        return session.get(Account, account_id)


def contact(sales: Engine, contact_id: int) -> Contact | None:
    with Session(sales) as session:
        return session.get(Contact, contact_id)


def contacts_of_account(sales: Engine, account_id: int) -> list[Contact]:
    """The account's contacts: the requester first, then the partner's users as dual-write
    made them, in the order they came."""
    with Session(sales) as session:
        return list(
            session.exec(
                select(Contact).where(Contact.account_id == account_id).order_by(col(Contact.id))
            ).all()
        )


def of_ids(engine: Engine, model: type[T], ids: list[int]) -> dict[int, T]:
    """The rows of `model` with these ids, by id (the ones that exist)."""
    with Session(engine) as session:
        rows = session.exec(select(model).where(model.id.in_(ids)))  # type: ignore[attr-defined]
        return {row.id: row for row in rows}  # type: ignore[attr-defined]


def opportunity_of_lead(sales: Engine, lead_id: int) -> Opportunity | None:
    with Session(sales) as session:
        return session.exec(select(Opportunity).where(Opportunity.lead_id == lead_id)).first()


def prospect(commerce: Engine, prospect_id: int) -> Prospect | None:
    with Session(commerce) as session:
        return session.get(Prospect, prospect_id)


def prospect_of_request(commerce: Engine, onboarding_id: str) -> Prospect | None:
    with Session(commerce) as session:
        query = select(Prospect).where(Prospect.onboarding_id == onboarding_id)
        return session.exec(query).first()


def stages_of(commerce: Engine, onboarding_ids: list[str | None]) -> dict[str, Stage]:
    """The stage each of these requests' prospects keeps, by onboarding id (the ones
    that exist): what a Sales page's rows may be decided by."""
    wanted = [oid for oid in onboarding_ids if oid is not None]
    if not wanted:
        return {}
    with Session(commerce) as session:
        query = select(Prospect.onboarding_id, Prospect.stage).where(
            col(Prospect.onboarding_id).in_(wanted)
        )
        return {oid: Stage(stage) for oid, stage in session.exec(query)}


def lead_of_request(sales: Engine, onboarding_id: str) -> Lead | None:
    with Session(sales) as session:
        return session.exec(select(Lead).where(Lead.onboarding_id == onboarding_id)).first()


def customers_of_request(commerce: Engine, onboarding_id: str) -> list[Customer]:
    """The partner's customers: the organisation first, then its people."""
    with Session(commerce) as session:
        query = select(Customer).where(Customer.onboarding_id == onboarding_id)
        customers = session.exec(query.order_by(col(Customer.id)))
        return sorted(customers, key=lambda customer: customer.customer_type != "organization")


def notifications_of_request(commerce: Engine, onboarding_id: str) -> list[EmailMessage]:
    """Every email the request has sent its requester, oldest first."""
    with Session(commerce) as session:
        query = select(EmailMessage).where(EmailMessage.onboarding_id == onboarding_id)
        return list(session.exec(query.order_by(col(EmailMessage.id))))


def failed_notifications(commerce: Engine) -> list[tuple[EmailMessage, Prospect | None]]:
    """The requests' emails refused for good and not sent since, newest first, with
    their prospect."""
    with Session(commerce) as session:
        query = (
            select(EmailMessage, Prospect)
            .outerjoin(Prospect, col(Prospect.onboarding_id) == col(EmailMessage.onboarding_id))
            .where(col(EmailMessage.failed_at).is_not(None), col(EmailMessage.sent_at).is_(None))
            .order_by(col(EmailMessage.failed_at).desc())
            .limit(FAILED_SHOWN)
        )
        return [(email, prospect) for email, prospect in session.exec(query)]


def customer(commerce: Engine, customer_id: int) -> Customer | None:
    with Session(commerce) as session:
        return session.get(Customer, customer_id)


@dataclass(frozen=True)
class HierarchyMember:
    customer: Customer
    role: str
    parent_customer_id: int | None


@dataclass(frozen=True)
class Hierarchy:
    hierarchy: CustomerHierarchy
    members: list[HierarchyMember]

    @property
    def root(self) -> HierarchyMember | None:
        return next((member for member in self.members if member.parent_customer_id is None), None)

    def children_of(self, customer_id: int | None) -> list[HierarchyMember]:
        return [member for member in self.members if member.parent_customer_id == customer_id]


def hierarchy_of_request(commerce: Engine, onboarding_id: str) -> Hierarchy | None:
    """The approved partner's customer hierarchy, with each member's customer."""
    with Session(commerce) as session:
        query = select(CustomerHierarchy).where(CustomerHierarchy.onboarding_id == onboarding_id)
        found = session.exec(query).first()
        if found is None:
            return None
        rows = session.exec(
            select(CustomerHierarchyMember, Customer)
            .join(Customer, col(Customer.id) == col(CustomerHierarchyMember.customer_id))
            .where(CustomerHierarchyMember.hierarchy_id == found.id)
            .order_by(col(CustomerHierarchyMember.id))
        )
        members = [
            HierarchyMember(
                customer=row, role=member.role, parent_customer_id=member.parent_customer_id
            )
            for member, row in rows
        ]
        return Hierarchy(hierarchy=found, members=members)


def anonymised(stores: Stores, onboarding_id: str) -> bool:
    """Whether the request's personal data has been anonymised (retention or erasure)."""
    with Session(stores.commerce) as session:
        query = select(Prospect.anonymised_at).where(Prospect.onboarding_id == onboarding_id)
        return session.exec(query).first() is not None


def anonymisation(stores: Stores, onboarding_id: str) -> RequestAnonymised | None:
    """The record of the request's anonymisation: how, when, by whom and why; None before."""
    with Session(stores.commerce) as session:
        prospect = _first(session, Prospect, onboarding_id)
    if prospect is None or prospect.anonymised_at is None:
        return None
    return RequestAnonymised(
        onboarding_id=onboarding_id,
        kind=AnonymisationKind(prospect.anonymisation_kind or AnonymisationKind.ERASURE),
        anonymised_at=_utc(prospect.anonymised_at),
        anonymised_by=prospect.anonymised_by or "",
        reason=prospect.anonymisation_reason or "",
    )


def request_status(stores: Stores, onboarding_id: str) -> OnboardingStatus | None:
    """A request's status rebuilt from both stores' rows, for when Temporal no longer has it.

    Temporal keeps a finished workflow only for the namespace's retention; the rows stay.
    """
    with Session(stores.commerce) as session:
        prospect = _first(session, Prospect, onboarding_id)
        if prospect is None:
            return None
        customers = {c.customer_type: c.id for c in _of(session, Customer, onboarding_id)}
        hierarchy = _first(session, CustomerHierarchy, onboarding_id)
        emails = sorted(_of(session, EmailMessage, onboarding_id), key=lambda row: row.id or 0)
    with Session(stores.sales) as session:
        lead = _first(session, Lead, onboarding_id)
        notes = _of(session, TimelineNote, onboarding_id)
        opportunity = session.exec(
            select(Opportunity).filter_by(onboarding_id=onboarding_id)
        ).first()
        contact = _first(session, Contact, onboarding_id)
        account = _first(session, Account, onboarding_id)

    # Each decision is kept on the row it decided, by the status it left there.
    decisions = []
    if lead is not None and lead.decided_at is not None:
        decisions.append(
            _decision(
                recorded_decision("lead", lead.status),
                lead.decided_by,
                lead.decision_reason,
                lead.decided_at,
                lead.reason_code,
                lead.internal_note,
            )
        )
    if opportunity is not None and opportunity.closed_at is not None:
        decisions.append(
            _decision(
                recorded_decision("opportunity", opportunity.status),
                opportunity.closed_by,
                opportunity.close_reason,
                opportunity.closed_at,
                opportunity.reason_code,
                opportunity.internal_note,
            )
        )
    if not prospect.sales_integration_enabled and prospect.decided_at is not None:
        decisions.append(
            _decision(
                recorded_decision("prospect", prospect.status),
                prospect.decided_by,
                prospect.decision_reason,
                prospect.decided_at,
                prospect.reason_code,
                prospect.internal_note,
            )
        )

    stage = Stage(prospect.stage)
    changed = prospect.decided_at or (decisions[-1].at if decisions else prospect.created_at)
    decision_email = next((row for row in emails if row.kind in DECISION_EMAILS), None)
    received = next((row for row in emails if row.kind == EmailKind.REQUEST_RECEIVED), None)
    return OnboardingStatus(
        onboarding_id=onboarding_id,
        workflow_id=onboarding_workflow_id(onboarding_id),
        stage=stage,
        stage_since=_utc(changed),
        submitted_at=_utc(prospect.created_at),
        company_name=prospect.company_name,
        email=prospect.email,
        locale="it" if prospect.locale == "it" else "en",
        sales_integration_enabled=prospect.sales_integration_enabled,
        decisions=decisions,
        records=RecordIds(
            prospect_id=prospect.id,
            lead_id=lead.id if lead else None,
            timeline_note_id=min((note.id for note in notes if note.id), default=None),
            opportunity_id=opportunity.id if opportunity else None,
            contact_id=contact.id if contact else None,
            account_id=account.id if account else None,
            person_customer_id=customers.get("person"),
            organization_customer_id=customers.get("organization"),
            customer_hierarchy_id=hierarchy.id if hierarchy else None,
            email_message_id=decision_email.id if decision_email else None,
        ),
        notification=_notification(decision_email) if decision_email else None,
        received_notification=_notification(received) if received else None,
        status_link_reminders=[
            _notification(row) for row in emails if row.kind == EmailKind.STATUS_LINK_REMINDER
        ],
        held=_held(prospect),
        reminders=[_notification(row) for row in emails if row.kind == EmailKind.TEAM_REMINDER],
    )


def _held(prospect: Prospect) -> HoldState | None:
    """The hold the prospect keeps, while it is undecided."""
    if prospect.held_since is None or prospect.status != ProspectStatus.PENDING:
        return None
    return HoldState(
        since=_utc(prospect.held_since),
        by=prospect.held_by or "unknown",
        note=prospect.hold_note or "",
    )


def _notification(row: EmailMessage) -> Notification:
    # The outbox cannot tell a failed email from one still being retried.
    return Notification(
        kind=EmailKind(row.kind),
        state="sent" if row.sent_at else "sending",
        email_message_id=row.id,
    )


def _first(session: Session, model: type[T], onboarding_id: str) -> T | None:
    return session.exec(select(model).filter_by(onboarding_id=onboarding_id)).first()


def _of(session: Session, model: type[T], onboarding_id: str) -> list[T]:
    return list(session.exec(select(model).filter_by(onboarding_id=onboarding_id)))


def _decision(
    action: Action,
    actor: str | None,
    reason: str | None,
    at: datetime,
    reason_code: str | None,
    note: str | None,
) -> DecisionRecord:
    return DecisionRecord(
        action=action,
        actor=actor or "unknown",
        reason=reason,
        at=_utc(at),
        # Only a decision that turns a request down keeps a code.
        reason_code=reason_code if TRANSITIONS[action].takes_reason else None,
        note=note,
    )


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; the stores write UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def stage_counts(stores: Stores) -> dict[Stage, int]:
    """How many requests stand in each stage, from the tallies both stores keep (for the
    metrics and the admins' overview): a few rows, however many requests.

    Decided requests are the prospects' statuses; undecided ones are told apart by the
    Sales integration mode and, with it, by their open lead or opportunity.
    """
    with Session(stores.commerce) as session:
        prospects = session.exec(
            select(
                ProspectTally.status,
                ProspectTally.sales_integration_enabled,
                func.sum(ProspectTally.row_count),
            ).group_by(col(ProspectTally.status), col(ProspectTally.sales_integration_enabled))
        ).all()
    with Session(stores.sales) as session:
        open_leads = session.exec(
            select(func.coalesce(func.sum(LeadTally.row_count), 0)).where(
                LeadTally.source == LEAD_SOURCE_COMMERCE_B2B, LeadTally.status == "open"
            )
        ).one()
        open_opportunities = session.exec(
            select(func.coalesce(func.sum(OpportunityTally.row_count), 0)).where(
                OpportunityTally.status == "open"
            )
        ).one()
    counts = dict.fromkeys(Stage, 0)
    for status, integration, count in prospects:
        decided = decided_stage(status)
        if decided is not None:
            counts[decided] += count
        elif not integration:
            counts[Stage.AWAITING_APPROVAL] += count
        else:
            counts[Stage.SUBMITTED] += count
    counts[Stage.LEAD_OPEN] = open_leads
    counts[Stage.OPPORTUNITY_OPEN] = open_opportunities
    # The two stores are read one after the other: never below zero for a request that
    # moved in between.
    counts[Stage.SUBMITTED] = max(0, counts[Stage.SUBMITTED] - open_leads - open_opportunities)
    return counts

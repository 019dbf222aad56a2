"""The Commerce store: the prospect, its customers, the customer hierarchy and the decision."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity

from activities.errors import conflicting_state, missing_record, write
from models.activity_io import (
    ApproveProspectInput,
    CreateProspectInput,
    CustomersWritten,
    OpenRequest,
    ProspectCreated,
    RecordHoldInput,
    RejectProspectInput,
    WriteCustomersInput,
)
from models.commerce import Customer, CustomerHierarchy, CustomerHierarchyMember, Prospect
from models.lifecycle import ProspectStatus
from models.partners import HIERARCHY_ROOT_ROLE
from stores import data_keys
from stores.engine import get_or_create, one

PERSON = "person"
ORGANIZATION = "organization"
ROLE_B2B_ADMIN = "b2b_admin"


class CommerceActivities:
    """Every write to Commerce, each idempotent on the onboarding id."""

    def __init__(self, engine: Engine, sales_integration_enabled: bool) -> None:
        self.engine = engine
        self.sales_integration_enabled = sales_integration_enabled

    @activity.defn
    def create_prospect(self, input: CreateProspectInput) -> ProspectCreated:
        """The request as a `pending` prospect in *All prospects* (a request started by
        an applicant workflow, which already made sure its email had no other)."""
        created = self.claim_prospect(input)
        if isinstance(created, OpenRequest):
            raise conflicting_state(
                f"the email of request {input.onboarding_id} has undecided request "
                f"{created.onboarding_id}"
            )
        return created

    def claim_prospect(self, input: CreateProspectInput) -> ProspectCreated | OpenRequest:
        """The request as a `pending` prospect holding its contact email, or, when another
        undecided request holds that email, nothing written and that request named.

        `prospect.undecided_email` is unique, so of two submissions racing with one email
        the store takes one; the other's insert fails, its retry reads the winner.
        Commerce's setting decides whether Sales works the prospect; the prospect keeps
        the answer, so a retry after the setting changed still gives the first one.
        """
        request = input.request
        email = request.email.lower()

        def work(session: Session) -> ProspectCreated | OpenRequest:
            prospect = one(session, Prospect, onboarding_id=input.onboarding_id)
            if prospect is None:
                holder = one(session, Prospect, undecided_email=email)
                if holder is not None:
                    # What this submission's workflow keeps is erased with the request.
                    data_keys.mark_duplicate(session, input.onboarding_id, holder.onboarding_id)
                    return OpenRequest(onboarding_id=holder.onboarding_id)
                prospect = Prospect(
                    onboarding_id=input.onboarding_id,
                    company_name=request.company,
                    company_address=request.company_address,
                    company_phone=request.company_phone,
                    website=request.website,
                    first_name=request.first_name,
                    last_name=request.last_name,
                    email=email,
                    undecided_email=email,
                    phone=request.phone,
                    job_title=request.job_title,
                    comments=request.comments,
                    locale=request.locale,
                    sales_integration_enabled=self.sales_integration_enabled,
                    created_at=input.at,
                )
                session.add(prospect)
                session.flush()
            assert prospect.id is not None
            return ProspectCreated(
                prospect_id=prospect.id,
                sales_integration_enabled=prospect.sales_integration_enabled,
            )

        return write(self.engine, work)

    @activity.defn
    def release_email(self, onboarding_id: str) -> None:
        """A request whose workflow ended undecided (an operator terminated it) no longer
        holds its contact email: the email may apply again."""

        def work(session: Session) -> None:
            prospect = one(session, Prospect, onboarding_id=onboarding_id)
            if prospect is not None and prospect.status == ProspectStatus.PENDING:
                prospect.undecided_email = None

        write(self.engine, work)

    @activity.defn
    def write_customers(self, input: WriteCustomersInput) -> CustomersWritten:
        """The partner's `organization` customer and the requester's `person` customer.

        With Sales on, this is dual-write of the Sales account and contact; with it off,
        the admin's approval creates them from the request.
        """
        request = input.request

        def work(session: Session) -> CustomersWritten:
            organization = get_or_create(
                session,
                Customer,
                lambda: Customer(
                    onboarding_id=input.onboarding_id,
                    customer_type=ORGANIZATION,
                    name=request.company,
                    phone=request.company_phone,
                    address=request.company_address,
                    website=request.website,
                    locale=request.locale,
                    sales_account_id=input.sales_account_id,
                    created_at=input.at,
                ),
                onboarding_id=input.onboarding_id,
                customer_type=ORGANIZATION,
            )
            person = get_or_create(
                session,
                Customer,
                lambda: Customer(
                    onboarding_id=input.onboarding_id,
                    customer_type=PERSON,
                    name=request.contact_name,
                    first_name=request.first_name,
                    last_name=request.last_name,
                    email=request.email,
                    phone=request.phone,
                    locale=request.locale,
                    sales_contact_id=input.sales_contact_id,
                    created_at=input.at,
                ),
                onboarding_id=input.onboarding_id,
                customer_type=PERSON,
            )
            assert person.id is not None and organization.id is not None
            return CustomersWritten(
                person_customer_id=person.id, organization_customer_id=organization.id
            )

        return write(self.engine, work)

    @activity.defn
    def approve_prospect(self, input: ApproveProspectInput) -> int:
        """Approve the prospect and build its customer hierarchy; returns the hierarchy id.

        The organisation is the root; the requester is in it as the B2B administrator, on
        the organisation's invoice account.
        """

        def work(session: Session) -> int:
            prospect = _decide(session, input.onboarding_id, ProspectStatus.APPROVED)
            if prospect.decided_at is None:
                prospect.decided_at, prospect.decided_by = input.at, input.actor
            organization = _customer(session, input.onboarding_id, ORGANIZATION)
            person = _customer(session, input.onboarding_id, PERSON)
            root_id, person_id = organization.id, person.id
            assert root_id is not None and person_id is not None
            hierarchy = get_or_create(
                session,
                CustomerHierarchy,
                lambda: CustomerHierarchy(
                    onboarding_id=input.onboarding_id,
                    name=organization.name,
                    root_customer_id=root_id,
                    created_at=input.at,
                ),
                onboarding_id=input.onboarding_id,
            )
            assert hierarchy.id is not None
            _member(session, input.onboarding_id, hierarchy.id, root_id, None, HIERARCHY_ROOT_ROLE)
            _member(session, input.onboarding_id, hierarchy.id, person_id, root_id, ROLE_B2B_ADMIN)
            # The B2B administrator orders on the organisation's invoice account.
            person.invoice_customer_id = root_id
            return hierarchy.id

        return write(self.engine, work)

    @activity.defn
    def reject_prospect(self, input: RejectProspectInput) -> None:
        """Mark the prospect rejected (lead cancelled, opportunity lost, or admin's reject)."""

        def work(session: Session) -> None:
            prospect = _decide(session, input.onboarding_id, ProspectStatus.REJECTED)
            if prospect.decided_at is None:
                prospect.decided_at, prospect.decided_by = input.at, input.actor
                prospect.decision_reason = input.reason
                prospect.reason_code, prospect.internal_note = input.reason_code, input.note

        write(self.engine, work)

    @activity.defn
    def record_hold(self, input: RecordHoldInput) -> None:
        """The request put on hold, or taken off it: All prospects shows which and why."""

        def work(session: Session) -> None:
            prospect = one(session, Prospect, onboarding_id=input.onboarding_id)
            if prospect is None:
                raise missing_record("The prospect", input.onboarding_id)
            held = input.held
            if prospect.status != ProspectStatus.PENDING:
                held = None
            prospect.held_since = held.since if held else None
            prospect.held_by = held.by if held else None
            prospect.hold_note = held.note if held else None

        write(self.engine, work)


def _decide(session: Session, onboarding_id: str, status: ProspectStatus) -> Prospect:
    prospect = one(session, Prospect, onboarding_id=onboarding_id)
    if prospect is None:
        raise missing_record("The prospect", onboarding_id)
    if prospect.status not in (ProspectStatus.PENDING, status):
        raise conflicting_state(f"prospect {prospect.id} is already {prospect.status}")
    prospect.status = status.value
    # Decided: the email may apply again, and nothing is on hold any more.
    prospect.undecided_email = None
    prospect.held_since = prospect.held_by = prospect.hold_note = None
    return prospect


def _member(
    session: Session,
    onboarding_id: str,
    hierarchy_id: int,
    customer_id: int,
    parent_customer_id: int | None,
    role: str,
) -> CustomerHierarchyMember:
    return get_or_create(
        session,
        CustomerHierarchyMember,
        lambda: CustomerHierarchyMember(
            onboarding_id=onboarding_id,
            hierarchy_id=hierarchy_id,
            customer_id=customer_id,
            parent_customer_id=parent_customer_id,
            role=role,
        ),
        hierarchy_id=hierarchy_id,
        customer_id=customer_id,
    )


def _customer(session: Session, onboarding_id: str, customer_type: str) -> Customer:
    customer = one(session, Customer, onboarding_id=onboarding_id, customer_type=customer_type)
    if customer is None:
        raise missing_record(f"The {customer_type} customer", onboarding_id)
    return customer

"""The Commerce store: the prospect, its customers, the customer hierarchy and the decision."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Engine, Update, bindparam, case, insert, or_, update
from sqlmodel import Session
from temporalio import activity

from activities.errors import conflicting_state, missing_record, write, write_sql
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
from models.lifecycle import ProspectStatus, decided_stage, first_stage
from models.partners import HIERARCHY_ROOT_ROLE
from models.search import search_columns
from stores import data_keys
from stores.engine import Sql, by_key, hot, insert_ignoring, insert_new, one

PERSON = "person"
ORGANIZATION = "organization"
ROLE_B2B_ADMIN = "b2b_admin"
PROSPECT = Prospect.__table__  # type: ignore[attr-defined]
CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
HIERARCHY = CustomerHierarchy.__table__  # type: ignore[attr-defined]
MEMBER = CustomerHierarchyMember.__table__  # type: ignore[attr-defined]


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

        values: dict[str, Any] = {
            "onboarding_id": input.onboarding_id,
            "company_name": request.company,
            "company_address": request.company_address,
            "company_phone": request.company_phone,
            "website": request.website,
            "first_name": request.first_name,
            "last_name": request.last_name,
            "email": email,
            "undecided_email": email,
            "phone": request.phone,
            "job_title": request.job_title,
            "comments": request.comments,
            "locale": request.locale,
            "sales_integration_enabled": self.sales_integration_enabled,
            # Recorded, the request waits for its first decision: the step's Sales write
            # (the lead) follows in its own transaction.
            "stage": first_stage(self.sales_integration_enabled),
            "created_at": input.at,
        }
        values.update(search_columns(values))
        columns = ("id", "sales_integration_enabled")

        def work(connection: Sql) -> ProspectCreated | OpenRequest:
            # Either key may be taken: this request's own (a retry), or its email (held
            # by another undecided request).
            prospect = connection.execute(
                insert_ignoring(connection, PROSPECT, *columns), values
            ).first()
            if prospect is None:
                prospect = connection.execute(
                    by_key(PROSPECT, ("onboarding_id",), *columns), values
                ).first()
            if prospect is None:
                holder = connection.execute(
                    by_key(PROSPECT, ("undecided_email",), "onboarding_id"), values
                ).scalar()
                if holder is not None:
                    # What this submission's workflow keeps is erased with the request.
                    data_keys.mark_duplicate(connection, input.onboarding_id, holder)
                    return OpenRequest(onboarding_id=holder)
                # Decided since: the email is free again, or taken again (`write_sql`
                # runs this once more on the conflict).
                prospect = connection.execute(
                    insert(PROSPECT).returning(*(PROSPECT.c[name] for name in columns)), values
                ).one()
            return ProspectCreated(
                prospect_id=prospect.id,
                sales_integration_enabled=prospect.sales_integration_enabled,
            )

        return write_sql(self.engine, work)

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

        organization = {
            "onboarding_id": input.onboarding_id,
            "customer_type": ORGANIZATION,
            "name": request.company,
            "phone": request.company_phone,
            "address": request.company_address,
            "website": request.website,
            "locale": request.locale,
            "sales_account_id": input.sales_account_id,
            "created_at": input.at,
        }
        person = {
            "onboarding_id": input.onboarding_id,
            "customer_type": PERSON,
            "name": request.contact_name,
            "first_name": request.first_name,
            "last_name": request.last_name,
            "email": request.email,
            "phone": request.phone,
            "job_title": request.job_title,
            "locale": request.locale,
            "sales_contact_id": input.sales_contact_id,
            "created_at": input.at,
        }
        key = ("onboarding_id", "customer_type")

        def work(connection: Sql) -> CustomersWritten:
            written = CustomersWritten(
                organization_customer_id=insert_new(connection, CUSTOMER, organization, *key),
                person_customer_id=insert_new(connection, CUSTOMER, person, *key),
            )
            if input.stage is not None:
                # The step's stage, while the prospect is undecided (a decided one keeps its own).
                connection.execute(
                    _ENTERING,
                    {
                        "prospect": input.onboarding_id,
                        "pending": ProspectStatus.PENDING.value,
                        "new_stage": input.stage.value,
                    },
                )
            return written

        return write_sql(self.engine, work)

    @activity.defn
    def approve_prospect(self, input: ApproveProspectInput) -> int:
        """Approve the prospect and build its customer hierarchy; returns the hierarchy id.

        The organisation is the root; the requester is in it as the B2B administrator, on
        the organisation's invoice account.
        """

        oid = input.onboarding_id

        def work(connection: Sql) -> int:
            _decide(connection, oid, ProspectStatus.APPROVED, input.at, input.actor, {})
            customers = {
                row.customer_type: row
                for row in connection.execute(
                    by_key(CUSTOMER, ("onboarding_id",), "id", "customer_type", "name"),
                    {"onboarding_id": oid},
                )
            }
            for customer_type in (ORGANIZATION, PERSON):
                if customer_type not in customers:
                    raise missing_record(f"The {customer_type} customer", oid)
            root, person = customers[ORGANIZATION], customers[PERSON]
            hierarchy_id = insert_new(
                connection,
                HIERARCHY,
                {
                    "onboarding_id": oid,
                    "name": root.name,
                    "root_customer_id": root.id,
                    "created_at": input.at,
                },
                "onboarding_id",
            )
            members = [
                (root.id, None, HIERARCHY_ROOT_ROLE),
                (person.id, root.id, ROLE_B2B_ADMIN),
            ]
            connection.execute(
                insert_ignoring(connection, MEMBER),
                [
                    {
                        "onboarding_id": oid,
                        "hierarchy_id": hierarchy_id,
                        "customer_id": customer_id,
                        "parent_customer_id": parent_id,
                        "role": role,
                    }
                    for customer_id, parent_id, role in members
                ],
            )
            # The B2B administrator orders on the organisation's invoice account.
            connection.execute(
                _INVOICE_ON, {"person_id": person.id, "invoice_customer_id": root.id}
            )
            return hierarchy_id

        return write_sql(self.engine, work)

    @activity.defn
    def reject_prospect(self, input: RejectProspectInput) -> None:
        """Mark the prospect rejected (lead cancelled, opportunity lost, or admin's reject)."""

        why = {
            "decision_reason": input.reason,
            "reason_code": input.reason_code,
            "internal_note": input.note,
        }
        write_sql(
            self.engine,
            lambda connection: _decide(
                connection, input.onboarding_id, ProspectStatus.REJECTED, input.at, input.actor, why
            ),
        )

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


_INVOICE_ON = hot(update(CUSTOMER).where(CUSTOMER.c.id == bindparam("person_id")))
_ENTERING = hot(
    update(PROSPECT)
    .where(
        PROSPECT.c.onboarding_id == bindparam("prospect"),
        PROSPECT.c.status == bindparam("pending"),
    )
    .values(stage=bindparam("new_stage"))
)


def _decide(
    connection: Sql,
    onboarding_id: str,
    status: ProspectStatus,
    at: datetime,
    actor: str,
    why: dict[str, Any],
) -> None:
    """The prospect decided: `status`, with when, by whom and `why` (kept from the first
    attempt when a retry finds it decided). One statement when the decision is new."""
    decided = {"decided_at": at, "decided_by": actor, **why}
    changed = connection.execute(
        _deciding(tuple(decided)),
        {
            "prospect": onboarding_id,
            "decided_status": status.value,
            "decided_stage": decided_stage(status),
            "pending": ProspectStatus.PENDING.value,
            **{f"new_{column}": value for column, value in decided.items()},
        },
    ).scalar()
    if changed is not None:
        return
    prospect = connection.execute(
        by_key(PROSPECT, ("onboarding_id",), "id", "status"), {"onboarding_id": onboarding_id}
    ).first()
    if prospect is None:
        raise missing_record("The prospect", onboarding_id)
    raise conflicting_state(f"prospect {prospect.id} is already {prospect.status}")


@cache
def _deciding(decided: tuple[str, ...]) -> Update:
    """The UPDATE deciding a prospect still pending (or decided so already), its `decided`
    columns written only the first time: built once for each set of them. (A parameter
    named as a column would be SET: these are named otherwise.)"""
    first = PROSPECT.c.decided_at.is_(None)
    return hot(
        update(PROSPECT)
        .where(
            PROSPECT.c.onboarding_id == bindparam("prospect"),
            or_(
                PROSPECT.c.status == bindparam("pending"),
                PROSPECT.c.status == bindparam("decided_status"),
            ),
        )
        # Decided: the email may apply again, and nothing is on hold any more.
        .values(
            status=bindparam("decided_status"),
            stage=bindparam("decided_stage"),
            undecided_email=None,
            held_since=None,
            held_by=None,
            hold_note=None,
            **{
                column: case(
                    (first, bindparam(f"new_{column}", type_=PROSPECT.c[column].type)),
                    else_=PROSPECT.c[column],
                )
                for column in decided
            },
        )
        .returning(PROSPECT.c.id)
    )

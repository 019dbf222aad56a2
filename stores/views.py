"""The read side of both stores: the views reps and admins work from."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, or_
from sqlmodel import Session, col, select

from models.commerce import Customer, CustomerHierarchy, CustomerHierarchyMember, Prospect
from models.sales import LEAD_SOURCE_COMMERCE_B2B, Lead, Opportunity, TimelineNote

# A list page shows this many rows; the search narrows it down.
PAGE_SIZE = 200


def all_commerce_b2b_leads(sales: Engine) -> list[Lead]:
    """*All Commerce B2B leads*: every lead dual-write created from a prospect."""
    with Session(sales) as session:
        query = select(Lead).where(Lead.source == LEAD_SOURCE_COMMERCE_B2B)
        return list(session.exec(query.order_by(col(Lead.created_at).desc()).limit(PAGE_SIZE)))


def open_leads(sales: Engine) -> list[Lead]:
    """*Open leads*: the ordinary view, which leaves the dual-write leads out."""
    with Session(sales) as session:
        query = select(Lead).where(Lead.status == "open", Lead.source != LEAD_SOURCE_COMMERCE_B2B)
        return list(session.exec(query.order_by(col(Lead.created_at).desc()).limit(PAGE_SIZE)))


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


def opportunity_of_lead(sales: Engine, lead_id: int) -> Opportunity | None:
    with Session(sales) as session:
        return session.exec(select(Opportunity).where(Opportunity.lead_id == lead_id)).first()


def all_prospects(
    commerce: Engine, status: str | None = None, search: str | None = None
) -> list[Prospect]:
    """*All prospects*, optionally with one status and matching a search.

    The search looks for the words in the company, the contact's name and email, and
    the request's reference, ignoring case.
    """
    with Session(commerce) as session:
        query = select(Prospect)
        if status is not None:
            query = query.where(Prospect.status == status)
        for word in (search or "").split():
            pattern = f"%{_escape_like(word.lower())}%"
            query = query.where(
                or_(
                    *(
                        func.lower(column).like(pattern, escape="\\")
                        for column in (
                            col(Prospect.company_name),
                            col(Prospect.first_name),
                            col(Prospect.last_name),
                            col(Prospect.email),
                            col(Prospect.onboarding_id),
                        )
                    )
                )
            )
        query = query.order_by(col(Prospect.created_at).desc(), col(Prospect.id).desc())
        return list(session.exec(query.limit(PAGE_SIZE)))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def prospect(commerce: Engine, prospect_id: int) -> Prospect | None:
    with Session(commerce) as session:
        return session.get(Prospect, prospect_id)


def prospect_of_request(commerce: Engine, onboarding_id: str) -> Prospect | None:
    with Session(commerce) as session:
        query = select(Prospect).where(Prospect.onboarding_id == onboarding_id)
        return session.exec(query).first()


def lead_of_request(sales: Engine, onboarding_id: str) -> Lead | None:
    with Session(sales) as session:
        return session.exec(select(Lead).where(Lead.onboarding_id == onboarding_id)).first()


def customers_of_request(commerce: Engine, onboarding_id: str) -> list[Customer]:
    """The partner's customers: the organisation first, then its people."""
    with Session(commerce) as session:
        query = select(Customer).where(Customer.onboarding_id == onboarding_id)
        customers = session.exec(query.order_by(col(Customer.id)))
        return sorted(customers, key=lambda customer: customer.customer_type != "organization")


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

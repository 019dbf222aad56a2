"""The read side of both stores: the views reps and admins work from."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models.commerce import Customer, CustomerHierarchy, CustomerHierarchyMember, Prospect
from models.sales import LEAD_SOURCE_COMMERCE_B2B, Lead, TimelineNote


def all_commerce_b2b_leads(sales: Engine) -> list[Lead]:
    """*All Commerce B2B leads*: every lead dual-write created from a prospect."""
    with Session(sales) as session:
        query = select(Lead).where(Lead.source == LEAD_SOURCE_COMMERCE_B2B)
        return list(session.exec(query.order_by(col(Lead.created_at).desc())))


def open_leads(sales: Engine) -> list[Lead]:
    """*Open leads*: the ordinary view, which leaves the dual-write leads out."""
    with Session(sales) as session:
        query = select(Lead).where(Lead.status == "open", Lead.source != LEAD_SOURCE_COMMERCE_B2B)
        return list(session.exec(query.order_by(col(Lead.created_at).desc())))


def timeline(sales: Engine, lead_id: int) -> list[TimelineNote]:
    with Session(sales) as session:
        query = select(TimelineNote).where(TimelineNote.lead_id == lead_id)
        return list(session.exec(query.order_by(col(TimelineNote.created_at))))


def all_prospects(commerce: Engine, status: str | None = None) -> list[Prospect]:
    """*All prospects*, optionally only those with one status."""
    with Session(commerce) as session:
        query = select(Prospect)
        if status is not None:
            query = query.where(Prospect.status == status)
        return list(session.exec(query.order_by(col(Prospect.created_at).desc())))


def hierarchy_members(
    commerce: Engine, hierarchy_id: int
) -> list[tuple[CustomerHierarchyMember, Customer]]:
    with Session(commerce) as session:
        query = (
            select(CustomerHierarchyMember, Customer)
            .join(Customer, col(Customer.id) == CustomerHierarchyMember.customer_id)
            .where(CustomerHierarchyMember.hierarchy_id == hierarchy_id)
            .order_by(col(CustomerHierarchyMember.id))
        )
        return [(member, customer) for member, customer in session.exec(query)]


def hierarchy_of(commerce: Engine, onboarding_id: str) -> CustomerHierarchy | None:
    with Session(commerce) as session:
        query = select(CustomerHierarchy).where(CustomerHierarchy.onboarding_id == onboarding_id)
        return session.exec(query).first()

"""The read side of both stores: the views reps and admins work from."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models.commerce import Prospect
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

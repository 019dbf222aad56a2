"""Tables of the Commerce store. Own registry and metadata: never created in Sales."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from models.payloads import (
    ACTOR_MAX,
    ADDRESS_MAX,
    COMMENTS_MAX,
    COMPANY_MAX,
    EMAIL_MAX,
    FULL_NAME_MAX,
    NAME_MAX,
    PHONE_MAX,
    REASON_MAX,
    WEBSITE_MAX,
)


class CommerceTable(SQLModel, registry=registry()):
    """Base of every Commerce table; its `metadata` holds the Commerce schema only."""


class Prospect(CommerceTable, table=True):
    """An onboarding request as Commerce's *All prospects* lists it."""

    __tablename__ = "prospect"
    __table_args__ = (UniqueConstraint("onboarding_id", name="uq_prospect_onboarding"),)

    id: int | None = Field(default=None, primary_key=True)
    onboarding_id: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=16, index=True)
    company_name: str = Field(max_length=COMPANY_MAX, index=True)
    company_address: str | None = Field(default=None, max_length=ADDRESS_MAX)
    company_phone: str | None = Field(default=None, max_length=PHONE_MAX)
    website: str | None = Field(default=None, max_length=WEBSITE_MAX)
    first_name: str = Field(max_length=NAME_MAX)
    last_name: str = Field(max_length=NAME_MAX)
    email: str = Field(max_length=EMAIL_MAX, index=True)
    phone: str | None = Field(default=None, max_length=PHONE_MAX)
    job_title: str | None = Field(default=None, max_length=NAME_MAX)
    comments: str | None = Field(default=None, max_length=COMMENTS_MAX)
    locale: str = Field(default="en", max_length=8)
    # With the Sales integration off, Commerce admins decide the prospect themselves.
    sales_integration_enabled: bool = True
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = Field(default=None, max_length=ACTOR_MAX)
    decision_reason: str | None = Field(default=None, max_length=REASON_MAX)


class Customer(CommerceTable, table=True):
    """A Commerce customer: the partner organisation or one of its people."""

    __tablename__ = "customer"
    __table_args__ = (
        UniqueConstraint("onboarding_id", "customer_type", name="uq_customer_onboarding_type"),
    )

    id: int | None = Field(default=None, primary_key=True)
    onboarding_id: str | None = Field(default=None, max_length=64, index=True)
    customer_type: str = Field(max_length=16, index=True)
    # An organisation's company name or a person's "first last".
    name: str = Field(max_length=max(COMPANY_MAX, FULL_NAME_MAX))
    first_name: str | None = Field(default=None, max_length=NAME_MAX)
    last_name: str | None = Field(default=None, max_length=NAME_MAX)
    email: str | None = Field(default=None, max_length=EMAIL_MAX, index=True)
    phone: str | None = Field(default=None, max_length=PHONE_MAX)
    address: str | None = Field(default=None, max_length=ADDRESS_MAX)
    website: str | None = Field(default=None, max_length=WEBSITE_MAX)
    locale: str = Field(default="en", max_length=8)
    credit_limit: float | None = None
    sales_contact_id: int | None = None
    sales_account_id: int | None = None
    created_at: datetime


class CustomerHierarchy(CommerceTable, table=True):
    """The partner's customer hierarchy, created when its prospect is approved."""

    __tablename__ = "customer_hierarchy"
    __table_args__ = (UniqueConstraint("onboarding_id", name="uq_customer_hierarchy_onboarding"),)

    id: int | None = Field(default=None, primary_key=True)
    onboarding_id: str | None = Field(default=None, max_length=64, index=True)
    name: str = Field(max_length=COMPANY_MAX)
    root_customer_id: int = Field(foreign_key="customer.id")
    created_at: datetime


class CustomerHierarchyMember(CommerceTable, table=True):
    """A customer's place in a hierarchy: the organisation at the root, people under it."""

    __tablename__ = "customer_hierarchy_member"
    __table_args__ = (UniqueConstraint("hierarchy_id", "customer_id", name="uq_hierarchy_member"),)

    id: int | None = Field(default=None, primary_key=True)
    onboarding_id: str | None = Field(default=None, max_length=64, index=True)
    hierarchy_id: int = Field(foreign_key="customer_hierarchy.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    parent_customer_id: int | None = Field(default=None, foreign_key="customer.id")
    role: str = Field(max_length=32)


class EmailMessage(CommerceTable, table=True):
    """The outbox: one row per notification, written before sending and marked when sent."""

    __tablename__ = "email_message"
    # One row per notification: a request's email of a kind, or (a reminder, sent again
    # in a later hour) of a kind and period.
    __table_args__ = (
        UniqueConstraint("onboarding_id", "kind", "period", name="uq_email_message_notification"),
    )

    id: int | None = Field(default=None, primary_key=True)
    onboarding_id: str | None = Field(default=None, max_length=64, index=True)
    kind: str = Field(max_length=40)
    period: str = Field(default="", max_length=16, sa_column_kwargs={"server_default": ""})
    recipient: str = Field(max_length=EMAIL_MAX)
    subject: str = Field(max_length=300)
    locale: str = Field(max_length=8)
    message_id: str = Field(max_length=255, unique=True)
    created_at: datetime
    sent_at: datetime | None = None
    attempts: int = 0

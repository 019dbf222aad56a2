"""Tables of the Sales (CRM) store. Own registry and metadata: never created in Commerce."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, Index, UniqueConstraint, event, true
from sqlalchemy.orm import Mapper, registry
from sqlmodel import Field, SQLModel

from models import tallies
from models.commerce import ExactNumeric
from models.dual_write import SyncChangeBase, SyncConflictBase
from models.lifecycle import actor_words
from models.partners import CREDIT_LIMIT_DIGITS, CREDIT_LIMIT_PLACES, CURRENCY_LEN
from models.requests import (
    ACTOR_MAX,
    ADDRESS_MAX,
    COMMENTS_MAX,
    COMPANY_MAX,
    EMAIL_MAX,
    NAME_MAX,
    NOTE_MAX,
    PHONE_MAX,
    REASON_CODE_MAX,
    REASON_MAX,
    WEBSITE_MAX,
)
from models.search import (
    COMPANY_KEY_MAX,
    LEAD_WORDS,
    SEARCHED,
    TRIGRAM_EXTENSION,
    search_columns,
)

LEAD_SOURCE_COMMERCE_B2B = "commerce_b2b"
LEAD_SOURCE_MANUAL = "manual"
DUAL_WRITE_NOTE = "dual_write_created"
# The timeline notes of decisions that take a reason, by kind: what happened, in words.
DECISION_NOTES = {
    "qualified": "Qualified",
    "disqualified": "Cancelled",
    "opportunity_won": "Opportunity closed as won",
    "opportunity_lost": "Opportunity closed as lost",
}


def decision_note(kind: str, actor: str, reason: str | None) -> str:
    """A decision's note on the lead's timeline: what, by whom, and the reason if one."""
    return f"{DECISION_NOTES[kind]} by {actor_words(actor)}" + (f": {reason}" if reason else ".")


# A lead's source as its page names it.
LEAD_SOURCE_WORDS = {
    LEAD_SOURCE_COMMERCE_B2B: "Commerce B2B onboarding (dual-write)",
    LEAD_SOURCE_MANUAL: "Entered in Sales",
}


class SalesTable(SQLModel, registry=registry()):
    """Base of every Sales table; its `metadata` holds the Sales schema only."""


class Lead(SalesTable, table=True):
    """A lead: its Contact part is the requester, its Company part the organisation."""

    __tablename__ = "lead"
    __table_args__ = (
        UniqueConstraint("onboarding_id", name="uq_lead_onboarding"),
        # The lead views (one source each): each sort with its keyset (the id breaks
        # ties). The first also holds what the filters test and the counts of the last
        # 30 days group by (`stores.queues`): a filter reads no row it does not show,
        # the counts no row.
        Index("ix_lead_source_created", "source", "created_at", "id", "status", "reason_code"),
        Index("ix_lead_source_company_key", "source", "company_key", "id"),
        LEAD_WORDS.index(),
    )

    id: int | None = Field(default=None, primary_key=True)
    onboarding_id: str | None = Field(default=None, max_length=64, index=True)
    source: str = Field(default=LEAD_SOURCE_MANUAL, max_length=32, index=True)
    status: str = Field(default="open", max_length=16, index=True)
    topic: str = Field(max_length=300)
    # Contact part
    first_name: str = Field(max_length=NAME_MAX)
    last_name: str = Field(max_length=NAME_MAX)
    email: str = Field(max_length=EMAIL_MAX, index=True)
    phone: str | None = Field(default=None, max_length=PHONE_MAX)
    job_title: str | None = Field(default=None, max_length=NAME_MAX)
    # Company part
    company_name: str = Field(max_length=COMPANY_MAX)
    company_address: str | None = Field(default=None, max_length=ADDRESS_MAX)
    company_phone: str | None = Field(default=None, max_length=PHONE_MAX)
    website: str | None = Field(default=None, max_length=WEBSITE_MAX)
    comments: str | None = Field(default=None, max_length=COMMENTS_MAX)
    locale: str = Field(default="en", max_length=8)
    commerce_prospect_id: int | None = None
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = Field(default=None, max_length=ACTOR_MAX)
    decision_reason: str | None = Field(default=None, max_length=REASON_MAX)
    reason_code: str | None = Field(default=None, max_length=REASON_CODE_MAX)
    internal_note: str | None = Field(default=None, max_length=NOTE_MAX)
    # When the requester's personal data was anonymised (Commerce's prospect says by whom
    # and why); the lead keeps its ids, dates, status, decisions and company name.
    anonymised_at: datetime | None = None
    # What the lead views (and the opportunities, through their lead) find and sort it
    # by (`models.search`), kept in step on every write through the ORM.
    search_text: str = Field(default="", sa_column_kwargs={"server_default": ""})
    company_key: str = Field(
        default="", max_length=COMPANY_KEY_MAX, sa_column_kwargs={"server_default": ""}
    )


@event.listens_for(Lead, "before_insert")
@event.listens_for(Lead, "before_update")
def _keep_searchable(_mapper: Mapper[Lead], _connection: object, lead: Lead) -> None:
    for column, value in search_columns(
        {field: getattr(lead, field) for field in SEARCHED}
    ).items():
        setattr(lead, column, value)


class LeadTally(SalesTable, table=True):
    """How many leads of each source stand in each status and reason code ('' for none):
    kept by the database's triggers (`models.tallies`), read for the lead views' counts."""

    __tablename__ = tallies.LEAD.name

    source: str = Field(primary_key=True, max_length=32)
    status: str = Field(primary_key=True, max_length=16)
    reason_code: str = Field(primary_key=True, max_length=REASON_CODE_MAX)
    row_count: int = 0


tallies.attach(tallies.LEAD, Lead.__table__)  # type: ignore[attr-defined]
tallies.attach(LEAD_WORDS, Lead.__table__, before=TRIGRAM_EXTENSION)  # type: ignore[attr-defined]


class TimelineNote(SalesTable, table=True):
    """A note on a lead's timeline."""

    __tablename__ = "timeline_note"
    __table_args__ = (UniqueConstraint("onboarding_id", "kind", name="uq_timeline_note_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    onboarding_id: str | None = Field(default=None, max_length=64, index=True)
    lead_id: int = Field(foreign_key="lead.id", index=True)
    kind: str = Field(max_length=40)
    text: str = Field(max_length=1000)
    author: str = Field(max_length=ACTOR_MAX)
    created_at: datetime


class Account(SalesTable, table=True):
    """The organisation, created when a lead is qualified."""

    __tablename__ = "account"
    __table_args__ = (UniqueConstraint("onboarding_id", name="uq_account_onboarding"),)

    id: int | None = Field(default=None, primary_key=True)
    onboarding_id: str | None = Field(default=None, max_length=64, index=True)
    name: str = Field(max_length=160)
    address: str | None = Field(default=None, max_length=ADDRESS_MAX)
    phone: str | None = Field(default=None, max_length=PHONE_MAX)
    website: str | None = Field(default=None, max_length=WEBSITE_MAX)
    originating_lead_id: int | None = Field(default=None, foreign_key="lead.id")
    created_at: datetime
    # Dual-write (`models.dual_write`): the organisation's credit limit, read-only here,
    # and the last Commerce change applied to this row.
    credit_limit_amount: Decimal | None = Field(
        default=None, sa_column=Column(ExactNumeric(CREDIT_LIMIT_DIGITS, CREDIT_LIMIT_PLACES))
    )
    credit_limit_currency: str | None = Field(default=None, max_length=CURRENCY_LEN)
    synced_change_id: int | None = None


class Contact(SalesTable, table=True):
    """The requester as a contact of the account, created when a lead is qualified."""

    __tablename__ = "contact"
    __table_args__ = (UniqueConstraint("onboarding_id", name="uq_contact_onboarding"),)

    id: int | None = Field(default=None, primary_key=True)
    onboarding_id: str | None = Field(default=None, max_length=64, index=True)
    first_name: str = Field(max_length=NAME_MAX)
    last_name: str = Field(max_length=NAME_MAX)
    email: str = Field(max_length=EMAIL_MAX, index=True)
    phone: str | None = Field(default=None, max_length=PHONE_MAX)
    job_title: str | None = Field(default=None, max_length=NAME_MAX)
    locale: str = Field(default="en", max_length=8)
    account_id: int | None = Field(default=None, foreign_key="account.id")
    originating_lead_id: int | None = Field(default=None, foreign_key="lead.id")
    created_at: datetime
    # Dual-write (`models.dual_write`): a contact made from a partner user names its
    # Commerce customer; its role there and whether it is still a user, read-only here;
    # the last Commerce change applied to this row.
    commerce_customer_id: int | None = Field(default=None, index=True)
    partner_role: str | None = Field(default=None, max_length=32)
    active: bool = Field(default=True, sa_column_kwargs={"server_default": true()})
    synced_change_id: int | None = None


class Opportunity(SalesTable, table=True):
    """The opportunity created by qualifying a lead; closing it as won or lost decides."""

    __tablename__ = "opportunity"
    __table_args__ = (
        UniqueConstraint("onboarding_id", name="uq_opportunity_onboarding"),
        # The opportunities view: newest first, with what the filters test and the
        # recent counts group by; sorted by company, through its lead.
        Index("ix_opportunity_created", "created_at", "id", "status", "reason_code"),
        Index("ix_opportunity_lead_id", "lead_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    onboarding_id: str | None = Field(default=None, max_length=64, index=True)
    name: str = Field(max_length=300)
    status: str = Field(default="open", max_length=16, index=True)
    lead_id: int | None = Field(default=None, foreign_key="lead.id")
    account_id: int | None = Field(default=None, foreign_key="account.id")
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    created_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = Field(default=None, max_length=ACTOR_MAX)
    close_reason: str | None = Field(default=None, max_length=REASON_MAX)
    reason_code: str | None = Field(default=None, max_length=REASON_CODE_MAX)
    internal_note: str | None = Field(default=None, max_length=NOTE_MAX)


class OpportunityTally(SalesTable, table=True):
    """How many opportunities stand in each status and reason code ('' for none): kept by
    the database's triggers (`models.tallies`), read for the opportunities' counts."""

    __tablename__ = tallies.OPPORTUNITY.name

    status: str = Field(primary_key=True, max_length=16)
    reason_code: str = Field(primary_key=True, max_length=REASON_CODE_MAX)
    row_count: int = 0


tallies.attach(tallies.OPPORTUNITY, Opportunity.__table__)  # type: ignore[attr-defined]


class SyncChange(SyncChangeBase, SalesTable, table=True):
    """Sales' dual-write outbox: changes of accounts and contacts, to cross to Commerce."""

    __tablename__ = "sync_change_to_commerce"
    __table_args__ = (Index("ix_sync_change_to_commerce_state_id", "state", "id"),)


class SyncConflict(SyncConflictBase, SalesTable, table=True):
    """Conflicts decided while applying Commerce's changes here."""

    __tablename__ = "sync_conflict_from_commerce"

"""Tables of the Commerce store. Own registry and metadata: never created in Sales."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Column, Dialect, Index, LargeBinary, Numeric, UniqueConstraint, event
from sqlalchemy.orm import Mapper, registry
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, SQLModel

from models import tallies
from models.dual_write import SyncChangeBase, SyncConflictBase
from models.partners import CREDIT_LIMIT_DIGITS, CREDIT_LIMIT_PLACES, CURRENCY_LEN
from models.requests import (
    ACTOR_MAX,
    ADDRESS_MAX,
    COMMENTS_MAX,
    COMPANY_MAX,
    EMAIL_MAX,
    FULL_NAME_MAX,
    NAME_MAX,
    NOTE_MAX,
    PHONE_MAX,
    REASON_CODE_MAX,
    REASON_MAX,
    WEBSITE_MAX,
)
from models.search import (
    COMPANY_KEY_MAX,
    PROSPECT_WORDS,
    SEARCHED,
    TRIGRAM_EXTENSION,
    search_columns,
)

TOKEN_HASH_LEN = 64
# The mail server's words when it refuses an email for good, as much as a page shows.
FAILURE_MAX = 500


class ExactNumeric(TypeDecorator[Decimal]):
    """NUMERIC(precision, scale) that gives back exactly the Decimal it was given, on SQLite too.

    PostgreSQL's numeric is exact. SQLite has no decimal type: it keeps a NUMERIC value as
    a float, so 9999999999999999.99 would come back as 10000000000000000.00. There the
    column holds the value in its smallest unit (hundredths at scale 2), an integer, exact
    to 18 digits; the schema is NUMERIC(precision, scale) on both.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision=precision, scale=scale)
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SmallestUnits(self.precision, self.scale))
        return dialect.type_descriptor(Numeric(self.precision, self.scale))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        # Rounded as PostgreSQL rounds a value with more places than the column's scale.
        return int(value.scaleb(self.scale).to_integral_value(ROUND_HALF_UP))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None or dialect.name != "sqlite":
            return value
        return Decimal(value).scaleb(-self.scale)


class _SmallestUnits(Numeric):
    """SQLite's side of `ExactNumeric`: NUMERIC in the schema, integers to and from the driver
    (Numeric's own processors would pass them through a float)."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


class CommerceTable(SQLModel, registry=registry()):
    """Base of every Commerce table; its `metadata` holds the Commerce schema only."""


class Prospect(CommerceTable, table=True):
    """An onboarding request as Commerce's *All prospects* lists it."""

    __tablename__ = "prospect"
    __table_args__ = (
        UniqueConstraint("onboarding_id", name="uq_prospect_onboarding"),
        # One undecided request per contact email: the lock that concurrent submissions
        # meet (see `undecided_email`).
        Index("uq_prospect_undecided_email", "undecided_email", unique=True),
        # All prospects: each sort with its keyset (the id breaks ties). The first also
        # holds what the filters test and the counts of the last 30 days group by
        # (`stores.queues`): a filter reads no row it does not show, the counts no row.
        Index(
            "ix_prospect_created",
            "created_at",
            "id",
            "status",
            "sales_integration_enabled",
            "reason_code",
        ),
        Index("ix_prospect_company_key", "company_key", "id"),
        PROSPECT_WORDS.index(),
    )

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
    # Where the request stands (`lifecycle.Stage`), written by each step with its own
    # Commerce writes: what the pages and the status read. A row an older build inserts
    # without one reads `submitted` until its next step.
    stage: str = Field(max_length=24, sa_column_kwargs={"server_default": "submitted"})
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = Field(default=None, max_length=ACTOR_MAX)
    decision_reason: str | None = Field(default=None, max_length=REASON_MAX)
    # Why it was rejected, as a `lifecycle.ReasonCode`, and staff's note (never emailed).
    reason_code: str | None = Field(default=None, max_length=REASON_CODE_MAX, index=True)
    internal_note: str | None = Field(default=None, max_length=NOTE_MAX)
    # On hold (reminders and the expiry clock stopped) since when, by whom and why.
    held_since: datetime | None = None
    held_by: str | None = Field(default=None, max_length=ACTOR_MAX)
    hold_note: str | None = Field(default=None, max_length=NOTE_MAX)
    # The contact email while the request is undecided, else NULL: unique, so a second
    # undecided request from one email cannot be written, however concurrent.
    undecided_email: str | None = Field(default=None, max_length=EMAIL_MAX)
    # Its personal data anonymised (`retention` or `erasure`): when, by whom and why. What
    # stays is the decision record: ids, dates, stages, decisions and the company name.
    anonymised_at: datetime | None = None
    anonymised_by: str | None = Field(default=None, max_length=ACTOR_MAX)
    anonymisation_kind: str | None = Field(default=None, max_length=16)
    anonymisation_reason: str | None = Field(default=None, max_length=REASON_MAX)
    # What All prospects finds and sorts it by (`models.search`), kept in step with the
    # fields above on every write through the ORM (`_keep_searchable`).
    search_text: str = Field(default="", sa_column_kwargs={"server_default": ""})
    company_key: str = Field(
        default="", max_length=COMPANY_KEY_MAX, sa_column_kwargs={"server_default": ""}
    )


@event.listens_for(Prospect, "before_insert")
@event.listens_for(Prospect, "before_update")
def _keep_searchable(_mapper: Mapper[Prospect], _connection: object, prospect: Prospect) -> None:
    for column, value in search_columns(
        {field: getattr(prospect, field) for field in SEARCHED}
    ).items():
        setattr(prospect, column, value)


class ProspectTally(CommerceTable, table=True):
    """How many prospects stand in each status, mode and reason code ('' for none): kept
    by the database's triggers (`models.tallies`), read for All prospects' counts."""

    __tablename__ = tallies.PROSPECT.name

    status: str = Field(primary_key=True, max_length=16)
    sales_integration_enabled: bool = Field(primary_key=True)
    reason_code: str = Field(primary_key=True, max_length=REASON_CODE_MAX)
    row_count: int = 0


tallies.attach(tallies.PROSPECT, Prospect.__table__)  # type: ignore[attr-defined]
tallies.attach(PROSPECT_WORDS, Prospect.__table__, before=TRIGRAM_EXTENSION)  # type: ignore[attr-defined]


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
    sales_contact_id: int | None = None
    sales_account_id: int | None = None
    # Whose invoice account this customer orders on: a partner's people order on their
    # organisation's, so the organisation's credit limit applies to all of them.
    invoice_customer_id: int | None = Field(default=None, foreign_key="customer.id")
    created_at: datetime
    # Dual-write (`models.dual_write`): a person's job title, as their Sales contact's;
    # the last Sales change applied to this row.
    job_title: str | None = Field(default=None, max_length=NAME_MAX)
    synced_change_id: int | None = None


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
    # A partner user's emails (invitations, links) belong to no onboarding request.
    partner_user_id: int | None = Field(default=None, foreign_key="partner_user.id", index=True)
    period: str = Field(default="", max_length=16, sa_column_kwargs={"server_default": ""})
    recipient: str = Field(max_length=EMAIL_MAX)
    subject: str = Field(max_length=300)
    locale: str = Field(max_length=8)
    message_id: str = Field(max_length=255, unique=True)
    created_at: datetime
    sent_at: datetime | None = None
    attempts: int = 0
    # Refused for good (an address or a message the server will never take, a login it
    # refuses): when, and the server's words. Cleared when it is sent again.
    failed_at: datetime | None = Field(default=None, index=True)
    failure: str | None = Field(default=None, max_length=FAILURE_MAX)
    # The last time a Commerce admin had it sent again, and who.
    resent_at: datetime | None = None
    resent_by: str | None = Field(default=None, max_length=ACTOR_MAX)


class PartnerUser(CommerceTable, table=True):
    """A person who signs in to the B2B site for a partner: one per person customer.

    Their role is their place in the customer hierarchy (`customer_hierarchy_member`);
    a removed user keeps this row and their customer record, and is unlinked.
    """

    __tablename__ = "partner_user"

    id: int | None = Field(default=None, primary_key=True)
    # Unique: one person is a user of one partner at a time.
    email: str = Field(max_length=EMAIL_MAX, unique=True)
    customer_id: int = Field(foreign_key="customer.id", unique=True)
    organization_customer_id: int = Field(foreign_key="customer.id", index=True)
    hierarchy_id: int = Field(foreign_key="customer_hierarchy.id", index=True)
    first_name: str = Field(max_length=NAME_MAX)
    last_name: str = Field(max_length=NAME_MAX)
    job_title: str | None = Field(default=None, max_length=NAME_MAX)
    locale: str = Field(default="en", max_length=8)
    state: str = Field(default="invited", max_length=16)
    password_hash: str | None = Field(default=None, max_length=255)
    created_at: datetime
    invited_by: str | None = Field(default=None, max_length=ACTOR_MAX)
    activated_at: datetime | None = None
    removed_at: datetime | None = None
    removed_by: str | None = Field(default=None, max_length=ACTOR_MAX)


class AccessLink(CommerceTable, table=True):
    """An emailed sign-in link (activation, invitation, password reset), stored hashed."""

    __tablename__ = "access_link"

    id: int | None = Field(default=None, primary_key=True)
    partner_user_id: int = Field(foreign_key="partner_user.id", index=True)
    purpose: str = Field(max_length=24)
    # The workflow's id for this link: retries of one send find one row.
    notification_id: str = Field(max_length=64, unique=True)
    token_hash: str = Field(max_length=TOKEN_HASH_LEN, unique=True)
    state: str = Field(default="valid", max_length=16)
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None


class WebSession(CommerceTable, table=True):
    """A signed-in browser or API client; the cookie or bearer holds the token, we its hash.

    Kept in the store so signing out, removing a user or changing a password ends the
    session for every web process at once.
    """

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=TOKEN_HASH_LEN, unique=True)
    # `staff` (subject: the API_TOKENS name) or `partner` (subject: the partner user id).
    kind: str = Field(max_length=16)
    subject: str = Field(max_length=ACTOR_MAX, index=True)
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None


class DataKey(CommerceTable, table=True):
    """A request's own payload encryption key, wrapped by a master key (`infra/encryption.py`).

    Every payload Temporal keeps for the request's workflow is encrypted with it; erasing
    the request's personal data destroys it (`wrapped_key` NULL), and with it the means
    to read that history (crypto-shredding).
    """

    __tablename__ = "data_key"

    id: int | None = Field(default=None, primary_key=True)
    onboarding_id: str = Field(max_length=64, unique=True)
    # The master key that wraps it (PAYLOAD_ENCRYPTION_KEYS' id), and the wrapped key.
    master_key_id: str = Field(max_length=40)
    wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    created_at: datetime
    destroyed_at: datetime | None = None
    # A duplicate submission's own workflow: the open request it met, whose erasure or
    # retention destroys this key with its own.
    duplicate_of: str | None = Field(default=None, max_length=64, index=True)


class CreditLimit(CommerceTable, table=True):
    """The organisation's credit limit: every user's invoice account is the organisation."""

    __tablename__ = "credit_limit"

    id: int | None = Field(default=None, primary_key=True)
    organization_customer_id: int = Field(foreign_key="customer.id", unique=True)
    amount: Decimal = Field(
        sa_column=Column(ExactNumeric(CREDIT_LIMIT_DIGITS, CREDIT_LIMIT_PLACES), nullable=False)
    )
    currency: str = Field(max_length=CURRENCY_LEN)
    limit_type: str = Field(max_length=32)
    mandatory: bool = False
    updated_at: datetime
    updated_by: str = Field(max_length=ACTOR_MAX)


class CreditLimitChange(CommerceTable, table=True):
    """One change of a credit limit: who, when, and the values before and after."""

    __tablename__ = "credit_limit_change"

    id: int | None = Field(default=None, primary_key=True)
    organization_customer_id: int = Field(foreign_key="customer.id", index=True)
    changed_at: datetime
    changed_by: str = Field(max_length=ACTOR_MAX)
    old_amount: Decimal | None = Field(
        default=None, sa_column=Column(ExactNumeric(CREDIT_LIMIT_DIGITS, CREDIT_LIMIT_PLACES))
    )
    old_currency: str | None = Field(default=None, max_length=CURRENCY_LEN)
    old_limit_type: str | None = Field(default=None, max_length=32)
    old_mandatory: bool | None = None
    new_amount: Decimal = Field(
        sa_column=Column(ExactNumeric(CREDIT_LIMIT_DIGITS, CREDIT_LIMIT_PLACES), nullable=False)
    )
    new_currency: str = Field(max_length=CURRENCY_LEN)
    new_limit_type: str = Field(max_length=32)
    new_mandatory: bool


class SyncChange(SyncChangeBase, CommerceTable, table=True):
    """Commerce's dual-write outbox: changes of customers, users and credit limits, to cross
    to Sales."""

    __tablename__ = "sync_change_to_sales"
    __table_args__ = (Index("ix_sync_change_to_sales_state_id", "state", "id"),)


class SyncConflict(SyncConflictBase, CommerceTable, table=True):
    """Conflicts decided while applying Sales' changes here."""

    __tablename__ = "sync_conflict_from_sales"

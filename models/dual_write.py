"""Dual-write after approval: which fields cross between Sales and Commerce, which way, and
which side is each field's master. Declared once: the sync applies it (`stores.dual_write`),
the edit models below are built from it, the API's read-only answer and the docs read it
(`field_map_rows`).

Two maps, as Dynamics 365's table maps: a Sales **account** is a Commerce **organisation
customer**; a Sales **contact** is a Commerce **person customer**. A field that crosses
`both` ways may be edited on either side; one that crosses `one` way only arrives on the
other side, where it is read-only (the credit limit, a user's role and whether they are
still a user: Commerce's). When both sides change the same field before either change has
crossed, the field's master wins (`decide_conflict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import JSON
from sqlmodel import Field as SAField
from sqlmodel import SQLModel

from models.requests import (
    ACTOR_MAX,
    REASON_MAX,
    Address,
    CompanyName,
    Email,
    Name,
    Phone,
    Website,
)


class Side(StrEnum):
    SALES = "sales"
    COMMERCE = "commerce"

    @property
    def other(self) -> Side:
        return Side.COMMERCE if self is Side.SALES else Side.SALES


class Entity(StrEnum):
    """What a change is about: the organisation (account) or a person (contact)."""

    ORGANIZATION = "organization"
    PERSON = "person"


class Direction(StrEnum):
    """One of the two sync workflows: the store its changes come from, and go to."""

    SALES_TO_COMMERCE = "sales_to_commerce"
    COMMERCE_TO_SALES = "commerce_to_sales"

    @property
    def source(self) -> Side:
        return Side.SALES if self is Direction.SALES_TO_COMMERCE else Side.COMMERCE

    @property
    def target(self) -> Side:
        return self.source.other

    @classmethod
    def from_side(cls, source: Side) -> Direction:
        return cls.SALES_TO_COMMERCE if source is Side.SALES else cls.COMMERCE_TO_SALES


@dataclass(frozen=True)
class MappedField:
    """One field of a map: its name in a change and on each side's row, and its rule."""

    name: str
    master: Side
    # True: edited on either side and crosses both ways; False: only its master writes
    # it, the other side shows it read-only.
    both_ways: bool
    # The validated type an edit of it takes (None: never edited by a person, the
    # store writes it: the credit limit, the role, whether still a user).
    kind: Any = None
    words: str = ""

    def flows_from(self, side: Side) -> bool:
        return self.both_ways or side is self.master


FIELD_MAP: dict[Entity, tuple[MappedField, ...]] = {
    Entity.ORGANIZATION: (
        MappedField("name", Side.SALES, True, CompanyName, "Company name"),
        MappedField("address", Side.COMMERCE, True, Address, "Address"),
        MappedField("phone", Side.COMMERCE, True, Phone, "Phone"),
        MappedField("website", Side.SALES, True, Website, "Website"),
        MappedField("credit_limit_amount", Side.COMMERCE, False, words="Credit limit"),
        MappedField("credit_limit_currency", Side.COMMERCE, False, words="Credit limit currency"),
    ),
    Entity.PERSON: (
        MappedField("first_name", Side.SALES, True, Name, "First name"),
        MappedField("last_name", Side.SALES, True, Name, "Last name"),
        MappedField("job_title", Side.SALES, True, Name, "Job title"),
        MappedField("phone", Side.COMMERCE, True, Phone, "Phone"),
        # The partner user signs in with it: Commerce's.
        MappedField("email", Side.COMMERCE, True, Email, "Email"),
        MappedField("partner_role", Side.COMMERCE, False, words="Role on the B2B site"),
        MappedField("active", Side.COMMERCE, False, words="Still a user of the B2B site"),
    ),
}
# Where each map's rows live, as the pages and the docs name them.
TABLES: dict[Entity, dict[Side, str]] = {
    Entity.ORGANIZATION: {Side.SALES: "account", Side.COMMERCE: "customer (organization)"},
    Entity.PERSON: {Side.SALES: "contact", Side.COMMERCE: "customer (person)"},
}


def mapped(entity: Entity, name: str) -> MappedField:
    return next(field for field in FIELD_MAP[entity] if field.name == name)


def editable(entity: Entity, side: Side) -> tuple[MappedField, ...]:
    """The fields a person edits on this side: those that flow out of it."""
    return tuple(f for f in FIELD_MAP[entity] if f.kind is not None and f.flows_from(side))


def read_only(entity: Entity, side: Side) -> tuple[str, ...]:
    """The fields that only arrive on this side: shown, never edited there."""
    return tuple(f.name for f in FIELD_MAP[entity] if not f.flows_from(side))


class EditBase(BaseModel):
    """An edit: only the fields sent change; null clears an optional one."""

    model_config = ConfigDict(extra="forbid")

    def changes(self) -> dict[str, Any]:
        return self.model_dump(include=self.model_fields_set)


# The names that may never be cleared: the row would have no name.
REQUIRED = {"name", "first_name", "last_name"}


def _edit_model(entity: Entity, side: Side) -> type[EditBase]:
    fields: dict[str, Any] = {
        f.name: (f.kind if f.name in REQUIRED else f.kind | None, Field(default=None))
        for f in editable(entity, side)
    }
    name = f"{side.value.title()}{entity.value.title()}Edit"
    return create_model(name, __base__=EditBase, **fields)


# The edit models the API and the pages take, one per side and map, built from FIELD_MAP;
# the sync validates each incoming change with the target side's model too.
EDITS: dict[tuple[Entity, Side], type[EditBase]] = {
    (entity, side): _edit_model(entity, side) for entity in Entity for side in Side
}
AccountEdit = EDITS[Entity.ORGANIZATION, Side.SALES]
ContactEdit = EDITS[Entity.PERSON, Side.SALES]
OrganizationCustomerEdit = EDITS[Entity.ORGANIZATION, Side.COMMERCE]
PersonCustomerEdit = EDITS[Entity.PERSON, Side.COMMERCE]


class ConflictDecision(StrEnum):
    INCOMING_WINS = "incoming_wins"
    LOCAL_WINS = "local_wins"


def decide_conflict(entity: Entity, field: str, incoming_from: Side) -> ConflictDecision:
    """Both sides changed `field` before either change crossed: the field's master wins.

    Every mapped field has one master, so the rule never falls back on clocks (two stores'
    commit times are not comparable); the loser's value is kept on the conflict's record.
    """
    master = mapped(entity, field).master
    return (
        ConflictDecision.INCOMING_WINS if master is incoming_from else ConflictDecision.LOCAL_WINS
    )


def field_map_rows() -> list[tuple[str, str, str, str, str]]:
    """The map as the docs print it: map, field, Sales column, Commerce column, rule."""
    rows = []
    for entity, fields in FIELD_MAP.items():
        tables = TABLES[entity]
        for f in fields:
            rule = "both ways" if f.both_ways else f"{f.master.value} → {f.master.other.value} only"
            rows.append(
                (
                    f"{tables[Side.SALES]} ↔ {tables[Side.COMMERCE]}",
                    f.name,
                    f.master.value,
                    rule,
                    f.words,
                )
            )
    return rows


# --- what crosses Temporal --------------------------------------------------------------


class SyncBatchInput(BaseModel):
    direction: Direction
    limit: int = 200
    # How long the activity waits for a first change when there is none (a long poll, so
    # an idle sync writes no history).
    wait_seconds: float = 2.0


class SyncBatchResult(BaseModel):
    applied: int = 0
    failed: int = 0
    conflicts: int = 0


class DualWriteInput(BaseModel):
    direction: Direction
    paused: bool = False
    paused_by: str | None = None
    paused_at: datetime | None = None


class PauseInput(BaseModel):
    actor: str


class SyncState(BaseModel):
    direction: Direction
    paused: bool
    paused_by: str | None = None
    paused_at: datetime | None = None


# --- the outbox and the conflicts, one table of each in each store ---------------------


class ChangeState(StrEnum):
    PENDING = "pending"  # waits to cross (paused, the other store down, or not yet drained)
    APPLIED = "applied"  # crossed: the other store has it (or had nothing to apply it to)
    FAILED = (
        "failed"  # the other store refused it: on the error list, the record's later changes wait
    )
    SKIPPED = "skipped"  # a Commerce admin chose not to send it (who and why kept)


class SyncChangeBase(SQLModel):
    """One committed change of a mapped row, written in the transaction that made it.

    The id orders a record's changes as they committed: two edits of one row serialise on
    its lock, so the later one's row here is inserted, and numbered, after the earlier
    committed. The target row keeps the id of the last change applied to it
    (`synced_change_id`), so applying a change again changes nothing.
    """

    id: int | None = SAField(default=None, primary_key=True)
    entity: str = SAField(max_length=16)
    # The changed row here, and its counterpart's id in the other store where this side
    # knows it (a contact made from a partner user knows its customer).
    record_id: int = SAField(index=True)
    counterpart_id: int | None = None
    # For a new person: the counterpart account (Commerce → Sales) it belongs to.
    parent_counterpart_id: int | None = None
    fields: dict[str, Any] = SAField(sa_type=JSON)
    # The last change from the other store the row had when this one was made: the
    # other side's changes after it were made without knowing this one (concurrent).
    seen_change_id: int | None = None
    actor: str = SAField(max_length=ACTOR_MAX)
    created_at: datetime
    state: str = SAField(default=ChangeState.PENDING.value, max_length=16)
    attempts: int = 0
    applied_at: datetime | None = None
    # Why the other store refused it (a constraint, a validation): the error list's words.
    error: str | None = SAField(default=None, max_length=REASON_MAX)
    failed_at: datetime | None = None
    skipped_by: str | None = SAField(default=None, max_length=ACTOR_MAX)
    skip_reason: str | None = SAField(default=None, max_length=REASON_MAX)
    # Fields a concurrent change on the other side won (its master's): not sent.
    lost_fields: list[str] = SAField(default_factory=list, sa_type=JSON)


class SyncConflictBase(SQLModel):
    """Both sides changed one field before either change crossed: who won, what was lost."""

    id: int | None = SAField(default=None, primary_key=True)
    entity: str = SAField(max_length=16)
    # The row here the field belongs to.
    record_id: int
    field: str = SAField(max_length=40)
    winner: str = SAField(max_length=16)
    kept_value: Any = SAField(default=None, sa_type=JSON)
    lost_value: Any = SAField(default=None, sa_type=JSON)
    # The incoming change (from the other store) and the local one it met.
    incoming_change_id: int
    local_change_id: int
    decided_at: datetime

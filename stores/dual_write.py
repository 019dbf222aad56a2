"""Dual-write's store side: every edit of a mapped row records its change in the same
transaction (the outbox), the sync drains each store's outbox in order and applies each
change to the other store once, deciding conflicts by the field map's rule; the error list,
the conflicts and the backlog are read here too.

A change applied by the sync writes no change of its own (it is the other side's change
arriving, not a new one), so nothing bounces back. The target row keeps the id of the last
change applied to it (`synced_change_id`): applying a change again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import Engine, func, insert, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import Session, SQLModel, col, select

from models import commerce, sales
from models.commerce import CreditLimit, Customer, CustomerHierarchyMember, PartnerUser, Prospect
from models.dual_write import (
    EDITS,
    FIELD_MAP,
    ChangeState,
    ConflictDecision,
    Direction,
    Entity,
    Side,
    SyncBatchResult,
    decide_conflict,
    mapped,
)
from models.partners import PartnerUserState
from models.sales import Account, Contact
from stores.engine import Sql, hot, transact

CHANGES: dict[Side, Any] = {Side.SALES: sales.SyncChange, Side.COMMERCE: commerce.SyncChange}
_RECORD = {side: hot(insert(model.__table__)) for side, model in CHANGES.items()}
CONFLICTS: dict[Side, Any] = {Side.SALES: sales.SyncConflict, Side.COMMERCE: commerce.SyncConflict}
ERROR_MAX = 500
# The states a change waits in: counted as the backlog.
WAITING = (ChangeState.PENDING.value, ChangeState.FAILED.value)


class NoSuchRecord(LookupError):
    pass


class EditRefused(Exception):
    """The store refuses an edit (a constraint: an email already another user's)."""


class TargetRefused(Exception):
    """The target store refuses a change for good (a validation, a constraint): the error
    list's reason, with no personal data (never a value, only what was wrong)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


# --- a mapped row's values, on each side ------------------------------------------------


def _person_user(session: Session, customer_id: int) -> PartnerUser | None:
    return session.exec(select(PartnerUser).where(PartnerUser.customer_id == customer_id)).first()


def values(session: Session, side: Side, entity: Entity, row: Any) -> dict[str, Any]:
    """The row's mapped fields, as a change carries them."""
    names = [f.name for f in FIELD_MAP[entity]]
    if side is Side.SALES:
        return {name: _json(getattr(row, name)) for name in names}
    if entity is Entity.ORGANIZATION:
        limit = session.exec(
            select(CreditLimit).where(CreditLimit.organization_customer_id == row.id)
        ).first()
        return {
            "name": row.name,
            "address": row.address,
            "phone": row.phone,
            "website": row.website,
            "credit_limit_amount": _json(limit.amount) if limit else None,
            "credit_limit_currency": limit.currency if limit else None,
        }
    member = session.exec(
        select(CustomerHierarchyMember).where(CustomerHierarchyMember.customer_id == row.id)
    ).first()
    user = _person_user(session, row.id)
    return {
        "first_name": row.first_name,
        "last_name": row.last_name,
        "job_title": row.job_title,
        "phone": row.phone,
        "email": row.email,
        "partner_role": member.role if member else None,
        "active": not (user is not None and user.state == PartnerUserState.REMOVED),
    }


def _write(session: Session, side: Side, entity: Entity, row: Any, fields: dict[str, Any]) -> None:
    """Set a row's mapped fields; a Commerce person's name and partner user follow."""
    for name, value in fields.items():
        if name == "credit_limit_amount" and value is not None:
            value = Decimal(value)
        setattr(row, name, value)
    if side is Side.COMMERCE and entity is Entity.PERSON:
        row.name = f"{row.first_name} {row.last_name}"
        user = _person_user(session, row.id)
        if user is not None:
            for name in ("first_name", "last_name", "job_title"):
                if name in fields:
                    setattr(user, name, fields[name])
            if fields.get("email"):
                user.email = fields["email"].lower()
    session.add(row)


# --- recording a change (inside the transaction that makes it) --------------------------


def record_change(
    session: Session,
    side: Side,
    entity: Entity,
    row: Any,
    fields: dict[str, Any],
    actor: str,
    at: datetime,
    parent_counterpart_id: int | None = None,
) -> None:
    """Add the change of `row` to this store's outbox; nothing when no field changed.

    One INSERT, now: an object for the session to flush cost more than the transaction's
    other statements (the approval email's). Its id still orders it after any change of
    the row committed before: the caller holds the row (locked, or just made)."""
    if not fields:
        return
    Sql(session.connection()).execute(
        _RECORD[side],
        {
            "entity": entity.value,
            "record_id": row.id,
            "counterpart_id": counterpart_id(side, entity, row),
            "parent_counterpart_id": parent_counterpart_id,
            "fields": {name: _json(value) for name, value in fields.items()},
            "seen_change_id": row.synced_change_id,
            "actor": actor,
            "created_at": at,
            # A new change has lost nothing (the column's default, computed by Python,
            # would send the INSERT the slow way).
            "lost_fields": [],
        },
    )


def counterpart_id(side: Side, entity: Entity, row: Any) -> int | None:
    """The row's counterpart in the other store, where this side keeps the link."""
    if side is Side.COMMERCE:
        return row.sales_account_id if entity is Entity.ORGANIZATION else row.sales_contact_id
    return row.commerce_customer_id if entity is Entity.PERSON else None


def _locked(session: Session, model: type[SQLModel], record_id: int) -> Any:
    return session.exec(
        select(model).where(model.id == record_id).with_for_update()  # type: ignore[attr-defined]
    ).first()


def customer_entity(customer: Customer) -> Entity:
    return Entity(customer.customer_type)


def edit(
    engine: Engine,
    side: Side,
    entity: Entity,
    record_id: int,
    changes: dict[str, Any],
    actor: str,
    at: datetime,
) -> dict[str, Any]:
    """Change a row's fields and record the change, in one transaction; the values now.

    Only the fields whose value differs are recorded; an edit that changes nothing
    records nothing.
    """
    model = _model(side, entity)

    def work(session: Session) -> dict[str, Any]:
        row = _locked(session, model, record_id)
        if row is None or (side is Side.COMMERCE and customer_entity(row) is not entity):
            raise NoSuchRecord(f"there is no {entity.value} {record_id}")
        before = values(session, side, entity, row)
        changed = {name: value for name, value in changes.items() if before[name] != value}
        _write(session, side, entity, row, changed)
        session.flush()
        record_change(session, side, entity, row, changed, actor, at)
        return {**before, **changed}

    try:
        return transact(engine, work)
    except IntegrityError as err:
        raise EditRefused(_constraint(err)) from err


def _constraint(err: IntegrityError | DataError) -> str:
    """What the store refused, in its first line: the rule, never the values (PostgreSQL
    puts those on the next line)."""
    return f"refused by the store: {str(err.orig).splitlines()[0]}"[:ERROR_MAX]


def _model(side: Side, entity: Entity) -> type[SQLModel]:
    if side is Side.COMMERCE:
        return Customer
    return Account if entity is Entity.ORGANIZATION else Contact


def record_values(engine: Engine, side: Side, entity: Entity, record_id: int) -> dict[str, Any]:
    """A mapped row's values (404 as `NoSuchRecord`)."""
    with Session(engine) as session:
        row: Any = session.get(_model(side, entity), record_id)
        if row is None or (side is Side.COMMERCE and customer_entity(row) is not entity):
            raise NoSuchRecord(f"there is no {entity.value} {record_id}")
        return values(session, side, entity, row)


def commerce_entity(engine: Engine, customer_id: int) -> Entity:
    with Session(engine) as session:
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise NoSuchRecord(f"there is no customer {customer_id}")
        return customer_entity(customer)


# --- applying a change to the other store -----------------------------------------------


class Change(BaseModel):
    """One outbox row as the sync reads it."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: int
    entity: Entity
    record_id: int
    counterpart_id: int | None
    parent_counterpart_id: int | None
    fields: dict[str, Any]
    seen_change_id: int | None
    lost_fields: list[str]
    actor: str
    created_at: datetime


def _target_row(session: Session, target: Side, change: Change) -> Any:
    """The change's row in the target store: found by the link either side keeps; a
    partner user's contact made on their organisation's account when there is none."""
    if target is Side.COMMERCE:
        kind = change.entity.value
        link = (
            Customer.sales_account_id
            if change.entity is Entity.ORGANIZATION
            else Customer.sales_contact_id
        )
        if change.counterpart_id is not None:
            return _locked(session, Customer, change.counterpart_id)
        return session.exec(
            select(Customer)
            .where(link == change.record_id, Customer.customer_type == kind)
            .with_for_update()
        ).first()
    if change.entity is Entity.ORGANIZATION:
        return (
            None
            if change.counterpart_id is None
            else _locked(session, Account, change.counterpart_id)
        )
    contact = session.exec(
        select(Contact).where(Contact.commerce_customer_id == change.record_id).with_for_update()
    ).first()
    if contact is None and change.counterpart_id is not None:
        contact = _locked(session, Contact, change.counterpart_id)
    if contact is None and change.parent_counterpart_id is not None:
        contact = Contact(
            first_name="",
            last_name="",
            email="",
            account_id=change.parent_counterpart_id,
            created_at=change.created_at,
        )
    if contact is not None and contact.commerce_customer_id is None:
        contact.commerce_customer_id = change.record_id
    return contact


def _validate(change: Change, source: Side, fields: dict[str, Any]) -> None:
    model = EDITS[change.entity, source]
    checked = {name: value for name, value in fields.items() if name in model.model_fields}
    try:
        model.model_validate(checked)
    except ValidationError as err:
        wrong = ", ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise TargetRefused(f"refused by validation: {wrong}"[:ERROR_MAX]) from None


def apply_change(session: Session, target: Side, change: Change) -> int:
    """Apply one change to its row in the target store; the conflicts it decided.

    Within the caller's transaction, so the row's values, its `synced_change_id` and the
    conflicts are written together or not at all.
    """
    source = target.other
    row = _target_row(session, target, change)
    if row is None or (row.synced_change_id or 0) >= change.id:
        return 0
    fields = {
        name: value for name, value in change.fields.items() if name not in change.lost_fields
    }
    _validate(change, source, fields)
    conflicts = 0
    if row.id is not None:
        conflicts = _decide_conflicts(session, target, change, row, fields)
    _write(session, target, change.entity, row, fields)
    row.synced_change_id = change.id
    session.flush()
    return conflicts


def _decide_conflicts(
    session: Session, target: Side, change: Change, row: Any, fields: dict[str, Any]
) -> int:
    """Local changes of the row's fields the incoming change did not know of: the field's
    master wins; the loser's value is kept on the conflict's row."""
    Local = CHANGES[target]
    local = session.exec(
        select(Local)
        .where(
            Local.entity == change.entity.value,
            Local.record_id == row.id,
            Local.id > (change.seen_change_id or 0),
            Local.state != ChangeState.SKIPPED.value,
        )
        .order_by(Local.id)
    ).all()
    decided = 0
    now = _now()
    for name in list(fields):
        meeting = [c for c in local if name in c.fields and name not in c.lost_fields]
        if not meeting or not mapped(change.entity, name).both_ways:
            continue
        latest = meeting[-1]
        decision = decide_conflict(change.entity, name, change_from := target.other)
        incoming_wins = decision is ConflictDecision.INCOMING_WINS
        session.add(
            CONFLICTS[target](
                entity=change.entity.value,
                record_id=row.id,
                field=name,
                winner=(change_from if incoming_wins else target).value,
                kept_value=fields[name] if incoming_wins else latest.fields[name],
                lost_value=latest.fields[name] if incoming_wins else fields[name],
                incoming_change_id=change.id,
                local_change_id=latest.id,
                decided_at=now,
            )
        )
        decided += 1
        if incoming_wins:
            for loser in meeting:
                loser.lost_fields = [*loser.lost_fields, name]
                session.add(loser)
        else:
            del fields[name]
    return decided


def pending_changes(engine: Engine, source: Side, limit: int) -> list[Change]:
    """The next changes to cross, oldest first; a record with a change on the error list
    sends none until it is retried or skipped, so its changes cross in order."""
    Outbox = CHANGES[source]
    with Session(engine) as session:
        waiting_records = {
            (entity, record_id)
            for entity, record_id in session.exec(
                select(Outbox.entity, Outbox.record_id).where(
                    Outbox.state == ChangeState.FAILED.value
                )
            ).all()
        }
        rows = session.exec(
            select(Outbox)
            .where(Outbox.state == ChangeState.PENDING.value)
            .order_by(Outbox.id)
            .limit(limit)
        ).all()
        return [
            Change.model_validate(row)
            for row in rows
            if (row.entity, row.record_id) not in waiting_records
        ]


def sync_batch(
    engines: dict[Side, Engine], direction: Direction, changes: Iterable[Change]
) -> SyncBatchResult:
    """Apply these changes to the target store, each in its own transaction, then mark them
    in the source's outbox. A change the target refuses goes to the error list and holds
    back its record's later changes; a store that is down raises (the activity retries,
    and what was applied before is found applied)."""
    source, target = direction.source, direction.target
    applied: list[int] = []
    failed: dict[int, str] = {}
    held: set[tuple[Entity, int]] = set()
    conflicts = 0
    for change in changes:
        if (change.entity, change.record_id) in held:
            continue
        try:
            conflicts += transact(engines[target], _applying(target, change))
        except TargetRefused as err:
            failed[change.id] = str(err)
        except (IntegrityError, DataError) as err:
            failed[change.id] = _constraint(err)
        else:
            applied.append(change.id)
            continue
        held.add((change.entity, change.record_id))
    _mark(engines[source], source, applied, failed)
    return SyncBatchResult(applied=len(applied), failed=len(failed), conflicts=conflicts)


def _applying(target: Side, change: Change) -> Callable[[Session], int]:
    return lambda session: apply_change(session, target, change)


def _mark(engine: Engine, source: Side, applied: list[int], failed: dict[int, str]) -> None:
    Outbox = CHANGES[source]
    now = _now()

    def work(session: Session) -> None:
        if applied:
            session.execute(
                update(Outbox)
                .where(col(Outbox.id).in_(applied), Outbox.state == ChangeState.PENDING.value)
                .values(
                    state=ChangeState.APPLIED.value, applied_at=now, attempts=Outbox.attempts + 1
                )
            )
        for change_id, reason in failed.items():
            session.execute(
                update(Outbox)
                .where(Outbox.id == change_id, Outbox.state == ChangeState.PENDING.value)
                .values(
                    state=ChangeState.FAILED.value,
                    error=reason,
                    failed_at=now,
                    attempts=Outbox.attempts + 1,
                )
            )

    transact(engine, work)


# --- the error list, the conflicts and the backlog ---------------------------------------


class NotOnTheErrorList(LookupError):
    pass


class SyncError(BaseModel):
    """A change the other store refused: what, why, and since when."""

    direction: Direction
    change_id: int
    entity: Entity
    record_id: int
    fields: list[str]
    error: str
    failed_at: datetime
    attempts: int


def errors(engines: dict[Side, Engine]) -> list[SyncError]:
    """Every change on the error list, oldest first in each direction."""
    found: list[SyncError] = []
    for side, engine in engines.items():
        Outbox = CHANGES[side]
        with Session(engine) as session:
            for row in session.exec(
                select(Outbox).where(Outbox.state == ChangeState.FAILED.value).order_by(Outbox.id)
            ).all():
                found.append(
                    SyncError(
                        direction=Direction.from_side(side),
                        change_id=row.id,
                        entity=Entity(row.entity),
                        record_id=row.record_id,
                        fields=sorted(row.fields),
                        error=row.error or "",
                        failed_at=row.failed_at,
                        attempts=row.attempts,
                    )
                )
    return found


def retry(engine: Engine, source: Side, change_id: int) -> None:
    """Send a refused change again: it waits first in line for its record."""
    _resolve(engine, source, change_id, state=ChangeState.PENDING.value, error=None, failed_at=None)


def skip(engine: Engine, source: Side, change_id: int, actor: str, reason: str) -> None:
    """Never send a refused change; who and why are kept, and its record's later changes go."""
    _resolve(
        engine,
        source,
        change_id,
        state=ChangeState.SKIPPED.value,
        skipped_by=actor,
        skip_reason=reason,
    )


def _resolve(engine: Engine, source: Side, change_id: int, **set_: Any) -> None:
    Outbox = CHANGES[source]

    def work(session: Session) -> None:
        done = session.execute(
            update(Outbox)
            .where(Outbox.id == change_id, Outbox.state == ChangeState.FAILED.value)
            .values(**set_)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise NotOnTheErrorList(f"change {change_id} is not on the error list")

    transact(engine, work)


class ConflictView(BaseModel):
    """A conflict decided by the rule: the field, who won, the value kept and the one lost."""

    entity: Entity
    field: str
    # The record's row in each store, where known.
    sales_record_id: int | None
    commerce_record_id: int | None
    winner: Side
    kept_value: Any
    lost_value: Any
    sales_change_id: int
    commerce_change_id: int
    decided_at: datetime


def conflicts(engines: dict[Side, Engine], limit: int = 100) -> list[ConflictView]:
    """The latest conflicts, newest first; one per decision, though both stores may have
    met it (each applying the other's change)."""
    seen: dict[tuple[int, int, str], ConflictView] = {}
    for side, engine in engines.items():
        Conflict = CONFLICTS[side]
        with Session(engine) as session:
            rows = session.exec(
                select(Conflict).order_by(col(Conflict.id).desc()).limit(limit)
            ).all()
        for row in rows:
            here_is_sales = side is Side.SALES
            view = ConflictView(
                entity=Entity(row.entity),
                field=row.field,
                sales_record_id=row.record_id if here_is_sales else None,
                commerce_record_id=None if here_is_sales else row.record_id,
                winner=Side(row.winner),
                kept_value=row.kept_value,
                lost_value=row.lost_value,
                sales_change_id=row.local_change_id if here_is_sales else row.incoming_change_id,
                commerce_change_id=row.incoming_change_id if here_is_sales else row.local_change_id,
                decided_at=row.decided_at,
            )
            seen.setdefault((view.sales_change_id, view.commerce_change_id, view.field), view)
    return sorted(seen.values(), key=lambda v: v.decided_at, reverse=True)[:limit]


class Backlog(BaseModel):
    """What waits to cross in one direction: how many, since when, how many refused."""

    direction: Direction
    waiting: int
    failed: int
    oldest: datetime | None


def backlog(engines: dict[Side, Engine]) -> list[Backlog]:
    found = []
    for side, engine in engines.items():
        Outbox = CHANGES[side]
        with Session(engine) as session:
            by_state = dict(
                session.exec(
                    select(Outbox.state, func.count())
                    .where(col(Outbox.state).in_(WAITING))
                    .group_by(Outbox.state)
                ).all()
            )
            oldest = session.exec(
                select(func.min(Outbox.created_at)).where(col(Outbox.state).in_(WAITING))
            ).one()
        found.append(
            Backlog(
                direction=Direction.from_side(side),
                waiting=sum(by_state.values()),
                failed=by_state.get(ChangeState.FAILED.value, 0),
                oldest=oldest,
            )
        )
    return found


def engines_of(sales_engine: Engine, commerce_engine: Engine) -> dict[Side, Engine]:
    return {Side.SALES: sales_engine, Side.COMMERCE: commerce_engine}


# --- the initial sync ---------------------------------------------------------------------


class InitialSync(BaseModel):
    """What one run of the initial sync did: rows compared, changes recorded (they cross
    through the sync, in order), contacts to be made for partner users, rows left alone
    because a change of theirs still waits to cross."""

    organizations: int = 0
    persons: int = 0
    changes: int = 0
    contacts_to_make: int = 0
    waiting: int = 0


def initial_sync(
    engines: dict[Side, Engine], actor: str, at: datetime, batch: int = 500
) -> InitialSync:
    """Bring the rows written before dual-write in step, once: each organisation and person
    customer linked to Sales is compared with its account or contact, field by field; each
    side's master fields that differ are recorded as that side's change. A partner user with
    no contact is recorded whole, so the sync makes the contact on the account.

    Resumable: it commits a batch at a time, and a row already in step records nothing, so
    a second run (after an interruption, or later) does only what is left.
    """
    done = InitialSync()
    after = 0
    while True:
        with Session(engines[Side.COMMERCE]) as session:
            ids = session.exec(
                select(Customer.id)
                .where(col(Customer.id) > after)
                .order_by(col(Customer.id))
                .limit(batch)
            ).all()
        if not ids:
            return done
        for customer_id in ids:
            assert customer_id is not None
            _bring_in_step(engines, customer_id, actor, at, done)
            after = customer_id


def _bring_in_step(
    engines: dict[Side, Engine], customer_id: int, actor: str, at: datetime, done: InitialSync
) -> None:
    with Session(engines[Side.COMMERCE]) as commerce_session:
        customer = commerce_session.get(Customer, customer_id)
        assert customer is not None
        entity = customer_entity(customer)
        if (
            entity is Entity.PERSON
            and customer.sales_contact_id is None
            and _person_user(commerce_session, customer_id) is None
        ):
            return  # a prospect's person not yet in a hierarchy: nothing of Sales' to match
        if entity is Entity.PERSON and _erased(commerce_session, customer):
            return  # anonymised in both stores: nothing left to bring in step
        there = values(commerce_session, Side.COMMERCE, entity, customer)
        parent = None
        if entity is Entity.PERSON and customer.invoice_customer_id:
            organization = commerce_session.get(Customer, customer.invoice_customer_id)
            parent = organization.sales_account_id if organization else None
    with Session(engines[Side.SALES]) as sales_session:
        row = _sales_row(sales_session, entity, customer)
        here = values(sales_session, Side.SALES, entity, row) if row is not None else None
        sales_id = row.id if row is not None else None
    if entity is Entity.ORGANIZATION and sales_id is None:
        return  # made in Commerce alone: no account to keep in step with
    if entity is Entity.ORGANIZATION:
        done.organizations += 1
    else:
        done.persons += 1
    if _waits(engines, entity, customer_id, sales_id):
        done.waiting += 1
        return
    if here is None:
        if parent is None:
            return
        transact(
            engines[Side.COMMERCE],
            _recording(Side.COMMERCE, entity, customer_id, there, actor, at, parent),
        )
        done.changes += 1
        done.contacts_to_make += 1
        return
    assert sales_id is not None
    for side, record_id, theirs in (
        (Side.COMMERCE, customer_id, there),
        (Side.SALES, sales_id, here),
    ):
        differ = {
            f.name: theirs[f.name]
            for f in FIELD_MAP[entity]
            if f.master is side and here[f.name] != there[f.name]
        }
        if differ:
            transact(engines[side], _recording(side, entity, record_id, differ, actor, at, None))
            done.changes += 1


def _erased(session: Session, customer: Customer) -> bool:
    """The person's request was anonymised: each store keeps its own placeholders (a
    contact's email is required, a customer's is not), which no change may carry across."""
    if customer.onboarding_id is None:
        return False
    prospect = session.exec(
        select(Prospect).where(Prospect.onboarding_id == customer.onboarding_id)
    ).first()
    return prospect is not None and prospect.anonymised_at is not None


def _sales_row(session: Session, entity: Entity, customer: Customer) -> Any:
    if entity is Entity.ORGANIZATION:
        return (
            session.get(Account, customer.sales_account_id) if customer.sales_account_id else None
        )
    contact = session.exec(
        select(Contact).where(Contact.commerce_customer_id == customer.id)
    ).first()
    if contact is None and customer.sales_contact_id is not None:
        contact = session.get(Contact, customer.sales_contact_id)
    return contact


def _waits(
    engines: dict[Side, Engine], entity: Entity, customer_id: int, sales_id: int | None
) -> bool:
    """A change of the record still waits to cross: the sync brings it in step itself."""
    for side, record_id in ((Side.COMMERCE, customer_id), (Side.SALES, sales_id)):
        if record_id is None:
            continue
        Outbox = CHANGES[side]
        with Session(engines[side]) as session:
            if session.exec(
                select(Outbox.id).where(
                    Outbox.entity == entity.value,
                    Outbox.record_id == record_id,
                    col(Outbox.state).in_(WAITING),
                )
            ).first():
                return True
    return False


def _recording(
    side: Side,
    entity: Entity,
    record_id: int,
    fields: dict[str, Any],
    actor: str,
    at: datetime,
    parent: int | None,
) -> Callable[[Session], None]:
    def work(session: Session) -> None:
        row = _locked(session, _model(side, entity), record_id)
        record_change(session, side, entity, row, fields, actor, at, parent_counterpart_id=parent)

    return work

"""The organisation's credit limit: setting it, with the log of every change, and reading both.

In Dynamics 365 every partner user's invoice account is the organisation, so the limit is
kept on the `organization` customer and applies to all its users. Pages and the API get
pydantic views, never ORM rows.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models.commerce import CreditLimit, CreditLimitChange, Customer
from models.dual_write import Entity, Side
from models.partners import CreditLimitValues
from stores import dual_write
from stores.engine import transact

HISTORY_SIZE = 50
VALUES = tuple(CreditLimitValues.model_fields)


class NoSuchCustomer(LookupError):
    def __init__(self, customer_id: int) -> None:
        super().__init__(f"there is no customer {customer_id}")


class NotAnOrganization(Exception):
    """Only an organisation customer has a credit limit; its people buy on its account."""

    def __init__(self, customer_id: int, customer_type: str) -> None:
        super().__init__(
            f"customer {customer_id} is a {customer_type} customer: the credit limit is its"
            " organisation's"
        )
        self.customer_type = customer_type


class CreditLimitView(CreditLimitValues):
    """An organisation's credit limit now, and who set it when."""

    model_config = ConfigDict(frozen=True)

    organization_customer_id: int
    updated_at: datetime
    updated_by: str


class CreditLimitSet(CreditLimitView):
    """What a set did: the limit now, and whether that changed it (a change is logged)."""

    changed: bool


class CreditLimitChangeView(BaseModel):
    """One change: who, when, the values before (none before the first set) and after."""

    model_config = ConfigDict(frozen=True)

    changed_at: datetime
    changed_by: str
    old: CreditLimitValues | None
    new: CreditLimitValues


class CreditLimitState(BaseModel):
    """An organisation customer's credit limit (none until one is set) and its latest changes,
    newest first."""

    customer_id: int
    credit_limit: CreditLimitView | None
    history: list[CreditLimitChangeView]


def keeps_a_credit_limit(customer: Customer) -> bool:
    """Only the organisation: it is the invoice account of each of its users."""
    return customer.customer_type == "organization"


def set_credit_limit(
    engine: Engine,
    organization_customer_id: int,
    values: CreditLimitValues,
    actor: str,
    at: datetime,
) -> CreditLimitSet:
    """Set the organisation's credit limit and log the change, in one transaction.

    Values equal to the current ones change nothing and log nothing (`changed` is False).
    """
    new = _values(values)

    def work(session: Session) -> CreditLimitSet:
        _organization(session, organization_customer_id, lock=True)
        row = _current(session, organization_customer_id)
        old = _values(row) if row else None
        if row is not None and old == new:
            return CreditLimitSet(**_view(row).model_dump(), changed=False)
        stamp = {"updated_at": at, "updated_by": actor}
        if row is None:
            row = CreditLimit.model_validate(
                new, update={"organization_customer_id": organization_customer_id, **stamp}
            )
        else:
            row.sqlmodel_update(new.model_dump(), update=stamp)
        session.add(row)
        session.add(
            CreditLimitChange.model_validate(
                {
                    "organization_customer_id": organization_customer_id,
                    "changed_at": at,
                    "changed_by": actor,
                    **{f"old_{name}": value for name, value in _dump(old).items()},
                    **{f"new_{name}": value for name, value in _dump(new).items()},
                }
            )
        )
        session.flush()
        crossing = {
            f"credit_limit_{name}": value
            for name, value in _dump(new).items()
            if name in ("amount", "currency") and (old is None or _dump(old)[name] != value)
        }
        organization = session.get(Customer, organization_customer_id)
        assert organization is not None
        dual_write.record_change(
            session, Side.COMMERCE, Entity.ORGANIZATION, organization, crossing, actor, at
        )
        return CreditLimitSet(**_view(row).model_dump(), changed=True)

    return transact(engine, work)


def credit_limit(engine: Engine, organization_customer_id: int) -> CreditLimitView | None:
    """The organisation's credit limit, or None while none is set."""
    with Session(engine) as session:
        row = _current(session, organization_customer_id)
        return _view(row) if row else None


def credit_limit_history(
    engine: Engine, organization_customer_id: int, limit: int = HISTORY_SIZE
) -> list[CreditLimitChangeView]:
    """The organisation's latest credit limit changes, newest first."""
    with Session(engine) as session:
        return _history(session, organization_customer_id, limit)


def require_organization(engine: Engine, customer_id: int) -> None:
    """Refuse, as a set would, any customer but an organisation."""
    with Session(engine) as session:
        _organization(session, customer_id, lock=False)


def credit_limit_state(
    engine: Engine, customer_id: int, limit: int = HISTORY_SIZE
) -> CreditLimitState:
    """An organisation customer's limit and history; refused for any other customer."""
    with Session(engine) as session:
        _organization(session, customer_id, lock=False)
        row = _current(session, customer_id)
        return CreditLimitState(
            customer_id=customer_id,
            credit_limit=_view(row) if row else None,
            history=_history(session, customer_id, limit),
        )


def _organization(session: Session, customer_id: int, lock: bool) -> None:
    query = select(Customer).where(Customer.id == customer_id)
    if lock:
        # Sets for one organisation take turns on its customer row, which, unlike the
        # credit_limit row, exists before the first set. NO KEY UPDATE: rows that only
        # refer to the customer (its users, its hierarchy) are not held up. SQLite has no
        # row locks; its BEGIN IMMEDIATE (stores.engine) already runs writers one at a time.
        query = query.with_for_update(key_share=True)
    customer = session.exec(query).first()
    if customer is None:
        raise NoSuchCustomer(customer_id)
    if not keeps_a_credit_limit(customer):
        raise NotAnOrganization(customer_id, customer.customer_type)


def _current(session: Session, organization_customer_id: int) -> CreditLimit | None:
    query = select(CreditLimit).where(
        CreditLimit.organization_customer_id == organization_customer_id
    )
    return session.exec(query).first()


def _history(
    session: Session, organization_customer_id: int, limit: int
) -> list[CreditLimitChangeView]:
    query = (
        select(CreditLimitChange)
        .where(CreditLimitChange.organization_customer_id == organization_customer_id)
        # Ids follow the order the changes were made in (each held the organisation's
        # lock); `changed_at` is each caller's clock, which need not.
        .order_by(col(CreditLimitChange.id).desc())
        .limit(limit)
    )
    return [
        CreditLimitChangeView(
            changed_at=change.changed_at,
            changed_by=change.changed_by,
            old=_values(change, "old_") if change.old_amount is not None else None,
            new=_values(change, "new_"),
        )
        for change in session.exec(query)
    ]


def _values(source: object, prefix: str = "") -> CreditLimitValues:
    """The values alone, from a row, a change's old or new side, or a view."""
    return CreditLimitValues.model_validate(
        {name: getattr(source, prefix + name) for name in VALUES}
    )


def _dump(values: CreditLimitValues | None) -> dict[str, object]:
    return values.model_dump() if values else dict.fromkeys(VALUES)


def _view(row: CreditLimit) -> CreditLimitView:
    return CreditLimitView.model_validate(row, from_attributes=True)

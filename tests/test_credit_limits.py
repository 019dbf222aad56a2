"""The organisation's credit limit in the Commerce store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from models.commerce import CreditLimit, CreditLimitChange, Customer
from models.partners import CreditLimitType, CreditLimitValues
from stores import Stores
from stores.credit_limits import (
    NoSuchCustomer,
    NotAnOrganization,
    credit_limit,
    credit_limit_history,
    credit_limit_state,
    set_credit_limit,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def a_customer(engine: Engine, customer_type: str = "organization") -> int:
    with Session(engine) as session:
        customer = Customer(customer_type=customer_type, name="Contoso Srl", created_at=T0)
        session.add(customer)
        session.commit()
        assert customer.id is not None
        return customer.id


def limit(amount: str, currency: str = "EUR", **more: object) -> CreditLimitValues:
    return CreditLimitValues.model_validate({"amount": amount, "currency": currency, **more})


def logged(engine: Engine, customer_id: int) -> int:
    with Session(engine) as session:
        query = select(func.count()).select_from(CreditLimitChange)
        return session.exec(
            query.where(CreditLimitChange.organization_customer_id == customer_id)
        ).one()


def test_the_first_set_is_logged_with_no_old_values(any_stores: Stores) -> None:
    engine = any_stores.commerce
    organization = a_customer(engine)
    assert credit_limit(engine, organization) is None
    assert credit_limit_history(engine, organization) == []

    done = set_credit_limit(
        engine, organization, limit("25000", limit_type="balance_all"), "anna", T0
    )
    assert done.changed
    assert (done.amount, done.currency, done.limit_type, done.mandatory) == (
        Decimal("25000.00"),
        "EUR",
        CreditLimitType.BALANCE_ALL,
        False,
    )
    current = credit_limit(engine, organization)
    assert current is not None
    assert (current.updated_by, current.updated_at) == ("anna", T0)
    assert str(current.amount) == "25000.00"
    [first] = credit_limit_history(engine, organization)
    assert (first.changed_by, first.changed_at, first.old) == ("anna", T0, None)
    assert first.new == limit("25000.00", limit_type="balance_all")


def test_a_change_is_logged_with_the_old_and_the_new_values(any_stores: Stores) -> None:
    engine = any_stores.commerce
    organization = a_customer(engine)
    set_credit_limit(engine, organization, limit("1000"), "anna", T0)
    later = T0 + timedelta(hours=1)
    changed = limit("1500.50", "USD", limit_type="balance_packing_slip", mandatory=True)

    done = set_credit_limit(engine, organization, changed, "marco", later)

    assert done.changed
    current = credit_limit(engine, organization)
    assert current is not None
    assert current.model_dump() == done.model_dump(exclude={"changed"})
    assert (current.updated_by, current.updated_at) == ("marco", later)
    newest, first = credit_limit_history(engine, organization)
    assert (newest.changed_by, newest.changed_at) == ("marco", later)
    assert newest.old == first.new == limit("1000")
    assert newest.new == changed


def test_setting_the_same_values_again_changes_and_logs_nothing(any_stores: Stores) -> None:
    engine = any_stores.commerce
    organization = a_customer(engine)
    set_credit_limit(engine, organization, limit("100.00", mandatory=True), "anna", T0)

    # The same limit, spelled otherwise.
    again = limit("100", " eur ", mandatory=True)
    done = set_credit_limit(engine, organization, again, "marco", T0 + timedelta(days=1))

    assert not done.changed
    assert (done.updated_by, done.updated_at) == ("anna", T0)
    assert logged(engine, organization) == 1


@pytest.mark.parametrize("customer_type", ["person", None])
def test_only_an_organisation_has_a_credit_limit(
    any_stores: Stores, customer_type: str | None
) -> None:
    engine = any_stores.commerce
    customer_id = a_customer(engine, customer_type) if customer_type else 2**31 - 1
    refusal = NotAnOrganization if customer_type else NoSuchCustomer
    with pytest.raises(refusal, match=str(customer_id)):
        set_credit_limit(engine, customer_id, limit("10"), "anna", T0)
    with pytest.raises(refusal):
        credit_limit_state(engine, customer_id)
    with Session(engine) as session:
        assert (
            session.exec(select(CreditLimit).filter_by(organization_customer_id=customer_id)).all()
            == []
        )
    assert logged(engine, customer_id) == 0


@pytest.mark.parametrize(
    "amounts",
    [
        ["0.10", "0.20", "0.30"],
        ["9999999999999999.99", "0.01", "1234567890123456.78"],
        ["0", "0.07", "4503599627370496.01"],
    ],
)
def test_amounts_come_back_exactly_as_set(any_stores: Stores, amounts: list[str]) -> None:
    engine = any_stores.commerce
    organization = a_customer(engine)
    for n, amount in enumerate(amounts):
        set_credit_limit(engine, organization, limit(amount), "anna", T0 + timedelta(minutes=n))
        current = credit_limit(engine, organization)
        assert current is not None
        assert current.amount == Decimal(amount)
        assert str(current.amount) == str(Decimal(amount).quantize(Decimal("0.01")))
    history = credit_limit_history(engine, organization)
    assert [str(change.new.amount) for change in reversed(history)] == [
        str(Decimal(amount).quantize(Decimal("0.01"))) for amount in amounts
    ]
    assert [change.old.amount for change in history if change.old] == [
        Decimal(amount) for amount in reversed(amounts[:-1])
    ]


def test_two_admins_setting_at_once_both_have_their_change_logged_in_order(
    any_stores: Stores,
) -> None:
    engine = any_stores.commerce
    organization = a_customer(engine)
    admins = 8
    start = threading.Barrier(admins)

    def set_as(n: int) -> None:
        start.wait()
        set_credit_limit(engine, organization, limit(f"{n + 1}000"), f"admin{n}", T0)

    with ThreadPoolExecutor(admins) as pool:
        list(pool.map(set_as, range(admins)))

    history = list(reversed(credit_limit_history(engine, organization)))
    assert sorted(change.changed_by for change in history) == sorted(
        f"admin{n}" for n in range(admins)
    )
    # Each change starts from the one before it: none was lost or applied on stale values.
    assert history[0].old is None
    for before, after in pairwise(history):
        assert after.old == before.new
    current = credit_limit(engine, organization)
    assert current is not None and current.amount == history[-1].new.amount


def test_the_history_is_newest_first_and_bounded(any_stores: Stores) -> None:
    engine = any_stores.commerce
    organization = a_customer(engine)
    for n in range(5):
        set_credit_limit(engine, organization, limit(str(n)), "anna", T0 + timedelta(minutes=n))
    assert [change.new.amount for change in credit_limit_history(engine, organization, 3)] == [
        Decimal(4),
        Decimal(3),
        Decimal(2),
    ]
    state = credit_limit_state(engine, organization, limit=2)
    assert state.credit_limit is not None and state.credit_limit.amount == Decimal(4)
    assert len(state.history) == 2

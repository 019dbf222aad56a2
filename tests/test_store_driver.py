"""The steps' hot statements go straight to the driver (`stores.engine.Sql`): they must
store and answer exactly what SQLAlchemy's own execution of them does, and fail the same
way, on SQLite and PostgreSQL. And a pooled server connection is pinged only when idle a
while (`stores.engine.CHECK_IDLE_AFTER`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from models.commerce import Prospect
from stores import Stores
from stores import engine as engine_module
from stores.engine import Sql, by_key, hot, insert_ignoring, make_engine, transact_sql
from tests.conftest import postgres_databases
from tests.faults.test_faults import set_database_down

PROSPECT = Prospect.__table__  # type: ignore[attr-defined]
PLAIN_INSERT = hot(PROSPECT.insert())
AT = datetime(2026, 12, 5, 9, 30, 15, 123456, tzinfo=UTC)
# What a prospect's row holds, as the driver hands it back (no SQLAlchemy conversion).
STORED = (
    "company_name, email, undecided_email, sales_integration_enabled, stage, created_at,"
    " status, locale, search_text, company_key"
)


def a_prospect() -> dict[str, Any]:
    """A prospect's values with some columns left to their defaults (status, locale)."""
    oid = uuid.uuid4().hex[:16]
    return {
        "onboarding_id": oid,
        "company_name": "Contoso Srl",
        "first_name": "Giulia",
        "last_name": "Rossi",
        "email": f"{oid}@example.com",
        "undecided_email": f"{oid}@example.com",
        "sales_integration_enabled": True,
        "stage": "lead_open",
        "created_at": AT,
    }


def stored(engine: Engine, onboarding_id: str) -> tuple[Any, ...]:
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            f"SELECT {STORED} FROM prospect WHERE onboarding_id = '{onboarding_id}'"
        ).one()
    return tuple(row)


def test_a_hot_statement_stores_and_answers_what_sqlalchemy_would(any_stores: Stores) -> None:
    engine = any_stores.commerce
    ours, theirs = a_prospect(), a_prospect()
    columns = ("id", "sales_integration_enabled", "created_at")

    written = transact_sql(
        engine, lambda sql: sql.execute(insert_ignoring(sql, PROSPECT, *columns), ours).one()
    )
    with engine.begin() as connection:
        expected = connection.execute(insert_ignoring(connection, PROSPECT, *columns), theirs).one()

    mine, its = stored(engine, ours["onboarding_id"]), stored(engine, theirs["onboarding_id"])
    # The same values in the same storage form (SQLite's datetime text, its 0/1 for a bool),
    # the defaults filled in; only the emails differ.
    assert (mine[0], *mine[3:]) == (its[0], *its[3:])
    assert (written.sales_integration_enabled, written.created_at) == (
        expected.sales_integration_enabled,
        expected.created_at,
    )
    assert type(written.sales_integration_enabled) is bool

    read = transact_sql(
        engine,
        lambda sql: sql.execute(
            by_key(PROSPECT, ("onboarding_id",), "status", "created_at"), ours
        ).one(),
    )
    assert (read.status, read.created_at) == ("pending", expected.created_at)


def test_a_hot_statement_fails_as_sqlalchemy_would(any_stores: Stores) -> None:
    engine = any_stores.commerce
    prospect = a_prospect()
    transact_sql(engine, lambda sql: sql.execute(insert_ignoring(sql, PROSPECT), prospect))
    # Another request holding the same undecided email: the unique key refuses it, as
    # SQLAlchemy's IntegrityError (which `transact_sql` runs the unit again on).
    again = {**a_prospect(), "undecided_email": prospect["undecided_email"]}

    def insert(sql: Sql) -> None:
        sql.execute(PLAIN_INSERT, again)

    with pytest.raises(IntegrityError):
        transact_sql(engine, insert)
    with engine.connect() as connection:
        held = connection.execute(
            text("SELECT count(*) FROM prospect WHERE undecided_email = :email"),
            {"email": prospect["undecided_email"]},
        ).scalar_one()
    assert held == 1


def test_a_server_connection_idle_a_while_is_asked_before_it_is_lent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with postgres_databases("pinged") as (url,):
        engine = make_engine(url)
        try:

            def select_one() -> Any:
                with engine.connect() as connection:
                    return connection.execute(text("SELECT 1")).scalar()

            select_one()
            set_database_down(url, down=True)
            set_database_down(url, down=False)
            # Used a moment ago: lent as it is; its statement finds it cut, and SQLAlchemy
            # drops the pool's connections, so the next one is new.
            with pytest.raises(OperationalError) as cut:
                select_one()
            assert cut.value.connection_invalidated
            assert select_one() == 1

            set_database_down(url, down=True)
            set_database_down(url, down=False)
            monkeypatch.setattr(engine_module, "CHECK_IDLE_AFTER", 0.0)
            # Idle past the window: asked first, found cut, replaced before it is lent.
            assert select_one() == 1
        finally:
            engine.dispose()

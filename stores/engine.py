"""Engines and the transaction helpers every activity writes through."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, Table, bindparam, create_engine, event
from sqlalchemy import select as select_columns
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session, SQLModel, select

T = TypeVar("T")
Row = TypeVar("Row", bound=SQLModel)


def make_engine(url: str) -> Engine:
    """An engine for any SQLAlchemy URL; SQLite is tuned for many concurrent writers.

    Its errors never quote the values of a statement (an email searched for, a name):
    they end up in tracebacks and logs.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True
        )

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # SQLite has one writer at a time, and every unit here writes. One connection per
    # process makes the process's writers queue on the pool, each woken the moment the
    # last commits; many connections would meet at SQLite's lock instead, whose waiters
    # sleep and poll (up to 100 ms a try): under load, seconds per write (see the bench).
    # Waiting gives up well inside an activity's 30 s, so the retry is clean.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 10},
        pool_size=1,
        max_overflow=0,
        pool_timeout=10,
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); pysqlite's own handling breaks savepoints
        # and lets two writers deadlock on a lock upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()
        # SQLite's own lower() knows only ASCII; searches ignore case in every script.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def transact(engine: Engine, work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction and commit.

    A unique-key conflict means a concurrent attempt of the same activity got there
    first; the whole unit runs once more and then finds that attempt's rows.
    """
    for attempt in (1, 2):
        with Session(engine, expire_on_commit=False) as session:
            try:
                result = work(session)
                session.commit()
                return result
            except IntegrityError:
                session.rollback()
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


def transact_sql(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`transact` for the hot paths, which write SQL rather than through the ORM's unit
    of work (a flush costs more than the statements it issues)."""
    for attempt in (1, 2):
        try:
            with engine.begin() as connection:
                return work(connection)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def insert_ignoring(connection: Connection, table: Table, *returning: str) -> Insert:
    """`INSERT … ON CONFLICT DO NOTHING [RETURNING …]` into `table`, in the connection's
    dialect (both have one); executed with the row's values as its parameters.

    Built once per dialect and table: building a statement with its values costs five
    times what executing a built one does.
    """
    return _ignoring(connection.dialect.name, table, returning)


@cache
def _ignoring(dialect: str, table: Table, returning: tuple[str, ...]) -> Insert:
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table).on_conflict_do_nothing()
    return statement.returning(*(table.c[name] for name in returning)) if returning else statement


def insert_new(connection: Connection, table: Table, values: dict[str, Any], *key: str) -> int:
    """The id of `table`'s row with `values`' `key`, inserted with `values` when there is
    none: one statement when it is new, a second to read it back when a retry finds it."""
    inserted = connection.execute(insert_ignoring(connection, table, "id"), values).scalar()
    if inserted is not None:
        return int(inserted)
    found = connection.execute(by_key(table, key, "id"), values).scalar_one()
    return int(found)


@cache
def by_key(table: Table, key: tuple[str, ...], *columns: str) -> Select[Any]:
    """`SELECT columns FROM table WHERE` each of `key` equals the parameter of its name."""
    return select_columns(*(table.c[name] for name in columns)).where(
        *(table.c[name] == bindparam(name) for name in key)
    )


def get_or_create(session: Session, model: type[Row], build: Callable[[], Row], **key: Any) -> Row:
    """The row of `model` with `key`, inserting `build()` when there is none yet."""
    row = session.exec(select(model).filter_by(**key)).first()
    if row is None:
        row = build()
        session.add(row)
        session.flush()
    return row


def one(session: Session, model: type[Row], **key: Any) -> Row | None:
    return session.exec(select(model).filter_by(**key)).first()

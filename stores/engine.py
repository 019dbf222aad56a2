"""Engines and the transaction helpers every activity writes through."""

from __future__ import annotations

import sqlite3
import time
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, Table, bindparam, create_engine, event
from sqlalchemy import select as select_columns
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import (
    DisconnectionError,
    IntegrityError,
    InvalidRequestError,
    MultipleResultsFound,
    NoResultFound,
)
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session, SQLModel, select

T = TypeVar("T")
Row = TypeVar("Row", bound=SQLModel)
Statement = TypeVar("Statement", bound=ClauseElement)
# A pooled server connection lent again this soon after its last use is lent as it is;
# one idle longer is asked SELECT 1 first (the server may have closed it meanwhile). As
# HikariCP's aliveBypassWindowMs (500 ms): a worker under load reuses its connections
# within milliseconds.
CHECK_IDLE_AFTER = 1.0
_USED_AT = "b2b_used_at"


def make_engine(url: str) -> Engine:
    """An engine for any SQLAlchemy URL; SQLite is tuned for many concurrent writers.

    Its errors never quote the values of a statement (an email searched for, a name):
    they end up in tracebacks and logs.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        server = create_engine(url, pool_size=10, max_overflow=20, hide_parameters=True)
        _ping_when_idle(server)
        return server

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
    def _on_begin(connection: Connection) -> None:
        # On the driver itself: SQLAlchemy's execution of it cost more than the BEGIN.
        # Its error (the lock still taken after busy_timeout) is SQLAlchemy's, as any.
        try:
            connection.connection.dbapi_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
        except sqlite3.Error as err:
            connection._handle_dbapi_exception(err, "BEGIN IMMEDIATE", None, None, None)
            raise

    return engine


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pre-ping, for a connection idle a while only: a ping on every checkout
    cost a round trip (and a tenth of the client's CPU) per transaction, most of them
    a moment after the last. A connection lost within that moment fails its statement;
    SQLAlchemy then drops every connection of the pool, and the activity's retry takes a
    fresh one."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_USED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        used_at = record.info.get(_USED_AT)
        if used_at is None or time.monotonic() - used_at < CHECK_IDLE_AFTER:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as err:
            # The pool drops this connection and lends another (up to three tries).
            raise DisconnectionError("the connection was closed while idle") from err


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


def transact_sql(engine: Engine, work: Callable[[Sql], T]) -> T:
    """`transact` for the hot paths, which write SQL rather than through the ORM's unit
    of work (a flush costs more than the statements it issues)."""
    for attempt in (1, 2):
        try:
            with engine.begin() as connection:
                return work(Sql(connection))
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def insert_ignoring(connection: Connection | Sql, table: Table, *returning: str) -> Insert:
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
    return hot(
        statement.returning(*(table.c[name] for name in returning)) if returning else statement
    )


def insert_new(connection: Sql, table: Table, values: dict[str, Any], *key: str) -> int:
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
    return hot(
        select_columns(*(table.c[name] for name in columns)).where(
            *(table.c[name] == bindparam(name) for name in key)
        )
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


# --- the hot statements, straight to the driver ------------------------------------------
#
# SQLAlchemy's execution of a statement it has compiled and cached still costs twice the
# driver's own work (an execution context, parameter and result objects, events), and a
# step issues a dozen statements: the steps' fixed statements go to the DB-API cursor
# with the SQL, parameter order and type conversions SQLAlchemy compiled for them once.
# Everything else (a statement built per call, one SQLAlchemy must expand or default
# at run time) takes SQLAlchemy's own path, through the same connection and transaction.


def hot(statement: Statement) -> Statement:
    """`statement`, executed by `Sql` straight on the driver: for statements built once
    (module constants, cached builders), never per call (each would be kept)."""
    _HOT.setdefault(id(statement), _Prepared(statement))
    return statement


class Rows:
    """A statement's rows, fetched whole (they are one or a few), as `Result` answers them."""

    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def all(self) -> list[Any]:
        return list(self.rows)

    def first(self) -> Any | None:
        return self.rows[0] if self.rows else None

    def one(self) -> Any:
        if not self.rows:
            raise NoResultFound("No row was found when one was required")
        if len(self.rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self.rows[0]

    def scalar(self) -> Any | None:
        return self.rows[0][0] if self.rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]


class Sql:
    """One transaction's statements: the `hot` ones on the driver's cursor, any other
    through SQLAlchemy, on the same connection. `execute` answers `Rows`.

    On a connection outside a transaction, a hot statement runs as the driver runs it:
    SQLite's alone (a read then takes no write lock, as SQLAlchemy's BEGIN IMMEDIATE
    would), PostgreSQL's until the connection goes back to the pool, which rolls it back.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect

    def execute(
        self, statement: Any, parameters: dict[str, Any] | list[dict[str, Any]] | None = None
    ) -> Rows:
        prepared = _HOT.get(id(statement))
        compiled = None
        if prepared is not None and prepared.statement is statement:
            compiled = prepared.compiled(self.dialect, parameters or {})
        if compiled is None:
            result = self.connection.execute(statement, parameters)
            return Rows(result.all() if result.returns_rows else [], result.rowcount)
        return compiled.run(self.connection, parameters or {})


@dataclass
class _Compiled:
    """A statement as SQLAlchemy compiled it for one dialect and one set of parameter
    names: its SQL, each parameter's name, key and value when not given, the type
    conversions, and (once a cursor has described them) its rows' shape and conversions."""

    sql: str
    positional: bool
    many: bool
    binds: tuple[tuple[str, str, bool, Any], ...]
    processors: dict[str, Callable[[Any], Any]]
    # The result columns SQLAlchemy compiled (none: the statement answers no rows), and
    # whether the driver has rows to fetch (an INSERT's implicit RETURNING has some).
    columns: tuple[Any, ...]
    fetches: bool
    row: Any = None
    results: tuple[Callable[[Any], Any] | None, ...] = ()
    converts: bool = False
    described: bool = field(default=False)

    def values(self, parameters: dict[str, Any]) -> Any:
        values: dict[str, Any] = {}
        for name, key, required, default in self.binds:
            if key in parameters:
                value = parameters[key]
            elif name in parameters:
                value = parameters[name]
            elif required:
                raise InvalidRequestError(f"A value is required for bind parameter {key!r}")
            else:
                value = default
            processor = self.processors.get(name)
            values[name] = processor(value) if processor is not None else value
        if self.positional:
            return tuple(values[name] for name, *_ in self.binds)
        return values

    def run(self, connection: Connection, parameters: Any) -> Rows:
        many = isinstance(parameters, list)
        values = [self.values(p) for p in parameters] if many else self.values(parameters)
        dispatch = connection.dispatch
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        cursor = dbapi_connection.cursor()
        try:
            if dispatch.before_cursor_execute:
                dispatch.before_cursor_execute(connection, cursor, self.sql, values, None, many)
            if many:
                cursor.executemany(self.sql, values)
            else:
                cursor.execute(self.sql, values)
            # Drained whole, even rows no one asked for (an INSERT's implicit RETURNING).
            fetched = cursor.fetchall() if self.fetches else []
            rowcount = cursor.rowcount
            if dispatch.after_cursor_execute:
                dispatch.after_cursor_execute(connection, cursor, self.sql, values, None, many)
            rows = (
                self._rows(cursor, fetched, connection.dialect) if self.columns and fetched else []
            )
        except connection.dialect.loaded_dbapi.Error as err:
            # As SQLAlchemy's own execution would: its exception (`IntegrityError`,
            # `DataError`, ...), and on a lost connection the pool's connections dropped.
            connection._handle_dbapi_exception(err, self.sql, values, cursor, None)
            raise
        finally:
            cursor.close()
        return Rows(rows, rowcount)

    def _rows(self, cursor: Any, rows: Sequence[Any], dialect: Dialect) -> list[Any]:
        if not self.described:
            self.results = tuple(
                column.type._cached_result_processor(dialect, described[1])
                for column, described in zip(self.columns, cursor.description, strict=True)
            )
            self.converts = any(self.results)
            self.described = True
        if self.converts:
            return [
                self.row(
                    *(
                        convert(value) if convert is not None else value
                        for convert, value in zip(self.results, row, strict=True)
                    )
                )
                for row in rows
            ]
        return [self.row(*row) for row in rows]


class _Prepared:
    """A `hot` statement's compiled forms, by dialect and parameter names."""

    def __init__(self, statement: ClauseElement) -> None:
        # Held, so that its id names no other statement while this lives.
        self.statement = statement
        self.forms: dict[tuple[Any, ...], _Compiled | None] = {}

    def compiled(self, dialect: Dialect, parameters: Any) -> _Compiled | None:
        many = isinstance(parameters, list)
        keys = tuple(sorted(parameters[0] if many else parameters))
        form = (dialect.name, dialect.driver, dialect.server_version_info, keys, many)
        if form not in self.forms:
            self.forms[form] = _compile(self.statement, dialect, keys, many)
        return self.forms[form]


def _compile(
    statement: ClauseElement, dialect: Dialect, keys: tuple[str, ...], many: bool
) -> _Compiled | None:
    """The statement's `_Compiled`, or None when SQLAlchemy must do part of the work at
    run time (expanding IN, escaped names, defaults computed by Python, rows of a many)."""
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=many)
    if (
        compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.escaped_bind_names
        or compiled.update_prefetch
        or (many and compiled.effective_returning)
        or any(bind.callable is not None for bind in compiled.bind_names)
        or any(not column.default.is_scalar for column in compiled.insert_prefetch)
    ):
        return None
    # Python-side scalar defaults of an INSERT's columns not given, as SQLAlchemy fills them.
    defaults = {column.key: column.default.arg for column in compiled.insert_prefetch}
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    names = compiled.positiontup if dialect.positional else list(by_name)
    binds = tuple(
        (
            name,
            by_name[name].key,
            by_name[name].required and name not in defaults,
            defaults.get(name, by_name[name].value),
        )
        for name in names
    )
    columns = tuple(compiled._result_columns)
    return _Compiled(
        sql=compiled.string,
        positional=dialect.positional,
        many=many,
        binds=binds,
        processors=dict(compiled._bind_processors),
        columns=columns,
        fetches=bool(columns or compiled.effective_returning),
        row=namedtuple("Row", [entry.keyname for entry in columns], rename=True),  # type: ignore[misc]
    )


_HOT: dict[int, _Prepared] = {}

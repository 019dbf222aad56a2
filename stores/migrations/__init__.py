"""Each store's schema history, in Alembic: `sales/` and `commerce/`, never one for both.

`migrate` brings a store to its newest revision; the worker, the web app and `make dev`
call it at start. A store made before migrations existed (tables, no history) is adopted
when its tables already match the models. New revisions:
`alembic --name sales revision --autogenerate -m "why"` (or `--name commerce`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect

from models import tallies
from models.commerce import CommerceTable
from models.sales import SalesTable
from models.search import LEAD_WORDS, PROSPECT_WORDS
from models.tallies import Triggered

HERE = Path(__file__).resolve().parent
METADATA: dict[str, MetaData] = {"sales": SalesTable.metadata, "commerce": CommerceTable.metadata}


class SchemaMismatch(Exception):
    """A store's tables differ from the models and no migration says how to get there."""


class NotMigrated(Exception):
    """A store this release cannot use as it is: empty, or at another migration.
    The worker and the web app migrate their stores when they start; a process that does
    not (the command line) pointed elsewhere would otherwise fail on a missing table."""


def version_table(store: str) -> str:
    """Each store keeps its own history, even when both share one database."""
    return f"alembic_version_{store}"


def config(store: str, connection: Connection | None = None) -> Config:
    settings = Config()
    settings.set_main_option("script_location", str(HERE / store))
    settings.attributes["store"] = store
    settings.attributes["connection"] = connection
    return settings


def head(store: str) -> str | None:
    return ScriptDirectory.from_config(config(store)).get_current_head()


def current(connection: Connection, store: str) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": version_table(store)})
    return context.get_current_revision()


def only_its_tables(store: str) -> Callable[[str | None, str, object], bool]:
    """Alembic's `include_name`: the store's own tables, never the other store's or a history."""

    def include(name: str | None, type_: str, _parents: object) -> bool:
        return type_ != "table" or name in METADATA[store].tables

    return include


def only_its_database(dialect: str) -> Callable[[object, str | None, str, bool, object], bool]:
    """Alembic's `include_object`: an index the models declare for one database only
    (`info={"dialect": …}`, PostgreSQL's trigram indexes) is not missing from the other."""

    def include(
        obj: object, _name: str | None, type_: str, reflected: bool, _other: object
    ) -> bool:
        if type_ != "index" or reflected:
            return True
        return getattr(obj, "info", {}).get("dialect", dialect) == dialect

    return include


def differences(connection: Connection, store: str) -> list[object]:
    """How the store's tables differ from the models; empty when they agree."""
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": only_its_tables(store),
            "include_object": only_its_database(connection.dialect.name),
        },
    )
    return list(compare_metadata(context, METADATA[store]))


# What triggers keep in each store's tables: the counts per filter, SQLite's word indexes.
TRIGGERED: dict[str, tuple[Triggered, ...]] = {
    "sales": (tallies.LEAD, tallies.OPPORTUNITY, LEAD_WORDS),
    "commerce": (tallies.PROSPECT, PROSPECT_WORDS),
}


def keep_triggers(connection: Connection, store: str) -> list[str]:
    """Make again, and refill, what lost its triggers; the names of what was.

    SQLite drops a table's triggers with the table, and Alembic's batch mode rebuilds a
    table to change a column: a later revision that does so would leave the counts and
    the word index behind without this.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        found = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    else:
        found = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    present = {row[0] for row in connection.exec_driver_sql(found)}
    remade = []
    for kept in TRIGGERED[store]:
        if set(kept.triggers(dialect)) <= present:
            continue
        for statement in [*kept.drop(dialect), *kept.create(dialect), *kept.refill(dialect)]:
            connection.exec_driver_sql(statement)
        remade.append(kept.name)
    return remade


def ensure_current(engine: Engine, store: str) -> None:
    """Refuse a store that is not at this release's newest migration, saying what it is."""
    where = f"the {store} store {engine.url.render_as_string(hide_password=True)}"
    with engine.connect() as connection:
        revision = current(connection, store)
        tables = inspect(connection).get_table_names()
    newest = head(store)
    if revision is None and not any(name in tables for name in METADATA[store].tables):
        raise NotMigrated(
            f"{where} is empty: no migration has run on it (the worker and the web app"
            " migrate their stores when they start; is this the store they use?)"
        )
    if revision != newest:
        raise NotMigrated(
            f"{where} is at migration {revision or 'none'}, not this release's {newest}:"
            " start this release's worker or web app, which migrate it"
        )


def migrate(engine: Engine, store: str) -> None:
    """Upgrade one store to its newest revision, adopting a store made before migrations."""
    with engine.begin() as connection:
        unversioned = current(connection, store) is None and any(
            name in inspect(connection).get_table_names() for name in METADATA[store].tables
        )
        if unversioned:
            found = differences(connection, store)
            if found:
                raise SchemaMismatch(
                    f"the {store} store has tables but no migration history, and they differ"
                    f" from the models ({len(found)} differences, first {found[0]});"
                    " move its data by hand, or start afresh with `make clean`"
                )
            command.stamp(config(store, connection), "head")
        else:
            command.upgrade(config(store, connection), "head")
        keep_triggers(connection, store)

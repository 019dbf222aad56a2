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

from models.commerce import CommerceTable
from models.sales import SalesTable

HERE = Path(__file__).resolve().parent
METADATA: dict[str, MetaData] = {"sales": SalesTable.metadata, "commerce": CommerceTable.metadata}


class SchemaMismatch(Exception):
    """A store's tables differ from the models and no migration says how to get there."""


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


def differences(connection: Connection, store: str) -> list[object]:
    """How the store's tables differ from the models; empty when they agree."""
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": only_its_tables(store)}
    )
    return list(compare_metadata(context, METADATA[store]))


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

"""What both stores' Alembic environments run: online only, on a connection we pass in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from settings import get_settings
from stores.engine import make_engine
from stores.migrations import METADATA, only_its_tables, version_table

# Serialises two processes migrating one PostgreSQL database at the same moment.
_PG_LOCK = {"sales": 7_305_001, "commerce": 7_305_002}


def run(store: str) -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection, store)
        return
    # From the `alembic` command line: the store's URL from the settings.
    settings = get_settings()
    url = settings.sales_database_url if store == "sales" else settings.commerce_database_url
    engine = make_engine(url)
    with engine.begin() as connection:
        _run(connection, store)
    engine.dispose()


def _run(connection: Connection, store: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK[store]})
    context.configure(
        connection=connection,
        target_metadata=METADATA[store],
        version_table=version_table(store),
        compare_type=True,
        include_name=only_its_tables(store),
        # SQLite alters a table by copying it; batch mode writes migrations that way.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()

"""Alembic environment of the Commerce store."""

from stores.migrations.environment import run

run("commerce")

"""Alembic environment of the Sales store."""

from stores.migrations.environment import run

run("sales")

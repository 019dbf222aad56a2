"""The two systems of record, Sales and Commerce: one engine each, never a shared transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from settings import Settings
from stores.engine import make_engine
from stores.migrations import ensure_current, migrate


@dataclass(frozen=True)
class Stores:
    sales: Engine
    commerce: Engine

    @classmethod
    def from_settings(cls, settings: Settings) -> Stores:
        return cls(
            sales=make_engine(settings.sales_database_url),
            commerce=make_engine(settings.commerce_database_url),
        )

    def migrate(self) -> None:
        """Bring each store's schema to its newest migration; each has its own history."""
        migrate(self.sales, "sales")
        migrate(self.commerce, "commerce")

    def ensure_current(self) -> None:
        """Refuse stores the worker and the web app have not brought to this release."""
        ensure_current(self.sales, "sales")
        ensure_current(self.commerce, "commerce")

    def dispose(self) -> None:
        self.sales.dispose()
        self.commerce.dispose()

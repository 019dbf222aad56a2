"""The two systems of record, Sales and Commerce: one engine each, never a shared transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from models.commerce import CommerceTable
from models.sales import SalesTable
from settings import Settings
from stores.engine import make_engine


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

    def create_tables(self) -> None:
        """Create missing tables; each store gets only its own schema."""
        SalesTable.metadata.create_all(self.sales)
        CommerceTable.metadata.create_all(self.commerce)

    def dispose(self) -> None:
        self.sales.dispose()
        self.commerce.dispose()

"""Reason codes and internal notes on the lead and the opportunity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 01:30:00.000000

A cancelled lead or a lost opportunity records why as a reason code
(`lifecycle.ReasonCode`) beside the reason the requester read, and staff's internal note.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("lead", "opportunity")


def upgrade() -> None:
    """Upgrade schema."""
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("reason_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
            )
            batch.add_column(
                sa.Column(
                    "internal_note", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True
                )
            )


def downgrade() -> None:
    """Downgrade schema."""
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("internal_note")
            batch.drop_column("reason_code")

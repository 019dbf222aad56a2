"""Reason codes, internal notes and holds on the prospect

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 01:30:00.000000

A rejected prospect records why as a reason code (`lifecycle.ReasonCode`, filterable in
All prospects) beside the reason the requester read, and staff's internal note; an
undecided one may be on hold. Rows decided before this revision keep no code.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("prospect") as batch:
        batch.add_column(
            sa.Column("reason_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        batch.add_column(
            sa.Column("internal_note", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True)
        )
        batch.add_column(
            sa.Column("held_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("held_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )
        batch.add_column(
            sa.Column("hold_note", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True)
        )
    op.create_index("ix_prospect_reason_code", "prospect", ["reason_code"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_prospect_reason_code", table_name="prospect")
    with op.batch_alter_table("prospect") as batch:
        for column in ("hold_note", "held_by", "held_since", "internal_note", "reason_code"):
            batch.drop_column(column)

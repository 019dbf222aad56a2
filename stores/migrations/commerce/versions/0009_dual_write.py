"""Dual-write: the outbox, the conflicts, and what a customer keeps of the sync

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 05:14:24.741555

Commerce's dual-write outbox (`sync_change_to_sales`) and the conflicts decided while applying
Sales' changes (`sync_conflict_from_sales`); a customer keeps its job title (a person's, as their
Sales contact's) and the id of the last Sales change applied to it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "sync_change_to_sales",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("counterpart_id", sa.Integer(), nullable=True),
        sa.Column("parent_counterpart_id", sa.Integer(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("seen_change_id", sa.Integer(), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("applied_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("failed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("skipped_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("skip_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("lost_fields", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sync_change_to_sales", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_change_to_sales_record_id"), ["record_id"], unique=False
        )
        batch_op.create_index("ix_sync_change_to_sales_state_id", ["state", "id"], unique=False)

    op.create_table(
        "sync_conflict_from_sales",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("field", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("winner", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("kept_value", sa.JSON(), nullable=False),
        sa.Column("lost_value", sa.JSON(), nullable=False),
        sa.Column("incoming_change_id", sa.Integer(), nullable=False),
        sa.Column("local_change_id", sa.Integer(), nullable=False),
        sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("job_title", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )
        batch_op.add_column(sa.Column("synced_change_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("synced_change_id")
        batch_op.drop_column("job_title")

    op.drop_table("sync_conflict_from_sales")
    with op.batch_alter_table("sync_change_to_sales", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_change_to_sales_state_id")
        batch_op.drop_index(batch_op.f("ix_sync_change_to_sales_record_id"))

    op.drop_table("sync_change_to_sales")

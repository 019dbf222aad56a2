"""Dual-write: the outbox, the conflicts, the credit limit and partner users in Sales

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 05:14:21.658273

Sales gets its dual-write outbox (`sync_change_to_commerce`, written in the transaction of the
change it records) and the conflicts decided while applying the other store's changes
(`sync_conflict_from_commerce`). An account shows its organisation's credit limit (read-only); a
contact names the Commerce customer it was made from, its role there and whether it is
still a user; both keep the id of the last Commerce change applied to them. Existing
rows start with none: the initial sync (`starter.py dual-write initial-sync`) fills them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from models.commerce import ExactNumeric

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "sync_change_to_commerce",
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
    with op.batch_alter_table("sync_change_to_commerce", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_change_to_commerce_record_id"), ["record_id"], unique=False
        )
        batch_op.create_index("ix_sync_change_to_commerce_state_id", ["state", "id"], unique=False)

    op.create_table(
        "sync_conflict_from_commerce",
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
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("credit_limit_amount", ExactNumeric(precision=18, scale=2), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "credit_limit_currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True
            )
        )
        batch_op.add_column(sa.Column("synced_change_id", sa.Integer(), nullable=True))

    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("commerce_customer_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("partner_role", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        # A constant default, not `sa.true()`: with an expression SQLite's batch mode
        # rebuilds `contact`, and dropping the old table fails on the opportunities that
        # name a contact (foreign keys are enforced, and cannot be turned off inside the
        # migration's transaction). '1' is true to both SQLite and PostgreSQL.
        batch_op.add_column(sa.Column("active", sa.Boolean(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("synced_change_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_contact_commerce_customer_id"), ["commerce_customer_id"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_commerce_customer_id"))
        batch_op.drop_column("synced_change_id")
        batch_op.drop_column("active")
        batch_op.drop_column("partner_role")
        batch_op.drop_column("commerce_customer_id")

    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("synced_change_id")
        batch_op.drop_column("credit_limit_currency")
        batch_op.drop_column("credit_limit_amount")

    op.drop_table("sync_conflict_from_commerce")
    with op.batch_alter_table("sync_change_to_commerce", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_change_to_commerce_state_id")
        batch_op.drop_index(batch_op.f("ix_sync_change_to_commerce_record_id"))

    op.drop_table("sync_change_to_commerce")

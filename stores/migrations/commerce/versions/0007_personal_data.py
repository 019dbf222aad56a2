"""Personal data: each request's payload encryption key, and its anonymisation on record

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 01:22:57.374542

`data_key` keeps each request's own key for what Temporal holds of it, wrapped by a
master key, until erasure destroys it. A prospect records when its personal data was
anonymised, by whom, why and how (retention or erasure). Existing prospects are not
anonymised; requests started before this revision have no data key (their histories
were written in clear).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "data_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("onboarding_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("master_key_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("destroyed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("onboarding_id"),
    )
    with op.batch_alter_table("prospect") as batch:
        batch.add_column(
            sa.Column("anonymised_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("anonymised_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "anonymisation_kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
            )
        )
        batch.add_column(
            sa.Column(
                "anonymisation_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("prospect") as batch:
        for column in (
            "anonymisation_reason",
            "anonymisation_kind",
            "anonymised_by",
            "anonymised_at",
        ):
            batch.drop_column(column)
    op.drop_table("data_key")

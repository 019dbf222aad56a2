"""Duplicate submissions' data keys name the request they met

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 04:20:00.000000

A submission that raced another with the same email ran a short workflow of its own,
which keeps what was typed under its own data key. `data_key.duplicate_of` names the
open request it met, so erasing that request (or its retention ending) destroys this key
too. Keys made before this revision name none: the sweep destroys them a day on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("data_key") as batch:
        batch.add_column(
            sa.Column("duplicate_of", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch.create_index(batch.f("ix_data_key_duplicate_of"), ["duplicate_of"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("data_key") as batch:
        batch.drop_index(batch.f("ix_data_key_duplicate_of"))
        batch.drop_column("duplicate_of")

"""Personal data: when a lead's requester data was anonymised

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:22:58.193553

Commerce's prospect records by whom, why and how (0007 there); the lead, when. Existing
leads are not anonymised.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("lead") as batch:
        batch.add_column(
            sa.Column("anonymised_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("lead") as batch:
        batch.drop_column("anonymised_at")

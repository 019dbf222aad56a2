"""Email outbox: one row per notification, and a reminder may come again in a later hour

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 20:14:32.397966

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("email_message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "period",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                server_default="",
                nullable=False,
            )
        )
        batch_op.drop_constraint("uq_email_message_kind", type_="unique")
        batch_op.create_unique_constraint(
            "uq_email_message_notification", ["onboarding_id", "kind", "period"]
        )


def downgrade() -> None:
    """Downgrade schema: of each request's reminders, the first is kept."""
    op.execute(
        "DELETE FROM email_message WHERE id NOT IN"
        " (SELECT min(id) FROM email_message GROUP BY onboarding_id, kind)"
        " AND onboarding_id IS NOT NULL"
    )
    with op.batch_alter_table("email_message", schema=None) as batch_op:
        batch_op.drop_constraint("uq_email_message_notification", type_="unique")
        batch_op.create_unique_constraint("uq_email_message_kind", ["onboarding_id", "kind"])
        batch_op.drop_column("period")

"""One undecided request per contact email, held by the store: prospect.undecided_email

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 23:20:00.000000

Until now an `applicant-<hash>` workflow per email held the rule; from this revision a
request's prospect holds its email in a unique column while it is undecided. Requests
already pending claim their email here, so a submission after the deploy meets them.
Should an email have more than one pending prospect (only a request an operator ended
by hand leaves one behind), the newest holds it.
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
    op.add_column(
        "prospect",
        sa.Column("undecided_email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    )
    op.execute(
        "UPDATE prospect SET undecided_email = email WHERE id IN"
        " (SELECT max(id) FROM prospect WHERE status = 'pending' GROUP BY email)"
    )
    op.create_index("uq_prospect_undecided_email", "prospect", ["undecided_email"], unique=True)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("uq_prospect_undecided_email", table_name="prospect")
    with op.batch_alter_table("prospect", schema=None) as batch_op:
        batch_op.drop_column("undecided_email")

"""The request's stage, kept on its prospect

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 05:30:00.000000

Each step of a request writes its new stage (`lifecycle.Stage`) on the prospect in the
transaction of its own Commerce writes, so the pages, the status rebuilt from the stores
and the links read it instead of rebuilding it from both stores' rows. Prospects stored
before this revision get the stage their Commerce rows show: the decided ones their
status; an undecided one with the Sales integration off waits for approval; with it on,
its lead was qualified once the qualify step has written its customers, else the lead
is open. A row an older build inserts without a stage reads `submitted` until its next
step.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The stages as this revision knows them (the models may move on).
_QUALIFIED = "EXISTS (SELECT 1 FROM customer WHERE customer.onboarding_id = prospect.onboarding_id)"
_BACKFILL = (
    ("status IN ('approved', 'rejected')", "status"),
    ("status = 'pending' AND sales_integration_enabled = :off", "'awaiting_approval'"),
    (
        f"status = 'pending' AND sales_integration_enabled = :on AND {_QUALIFIED}",
        "'opportunity_open'",
    ),
    (f"status = 'pending' AND sales_integration_enabled = :on AND NOT {_QUALIFIED}", "'lead_open'"),
)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("prospect") as batch:
        batch.add_column(
            sa.Column(
                "stage",
                sqlmodel.sql.sqltypes.AutoString(length=24),
                nullable=False,
                server_default="submitted",
            )
        )
    for where, stage in _BACKFILL:
        op.get_bind().execute(
            sa.text(f"UPDATE prospect SET stage = {stage} WHERE {where}"),
            {"on": True, "off": False},
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("prospect") as batch:
        batch.drop_column("stage")

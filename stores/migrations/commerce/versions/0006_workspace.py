"""All prospects at size: search and sort columns, their indexes; the outbox's failures

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 09:00:00.000000

All prospects finds a request by the folded words of its company, contact, email and
reference (`prospect.search_text`) and sorts by the folded company (`company_key`); the
prospects already stored get theirs here. Indexes serve each sort by keyset, and hold
what the filters test; a trigram index finds a word anywhere in the words (SQLite: an
FTS5 table; PostgreSQL: pg_trgm, whose extension is created here). The counts per
filter come from `prospect_tally`, which triggers keep (`models.tallies`), counted here
once from the prospects already stored.

The outbox keeps a notification refused for good (`failed_at`, the server's words in
`failure`) and the last time an admin had it sent again (`resent_at`, `resent_by`).
Emails refused before this revision have no record of it here; Temporal's status of
their request still says why.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from models import tallies
from models.search import PROSPECT_WORDS, TRIGRAM_EXTENSION, company_key, search_text

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000
INDEXES = {
    "ix_prospect_created": [
        "created_at",
        "id",
        "status",
        "sales_integration_enabled",
        "reason_code",
    ],
    "ix_prospect_company_key": ["company_key", "id"],
}


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("prospect") as batch:
        batch.add_column(
            sa.Column(
                "search_text", sqlmodel.sql.sqltypes.AutoString(), server_default="", nullable=False
            )
        )
        batch.add_column(
            sa.Column(
                "company_key",
                sqlmodel.sql.sqltypes.AutoString(length=200),
                server_default="",
                nullable=False,
            )
        )
    with op.batch_alter_table("email_message") as batch:
        batch.add_column(sa.Column("failed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("failure", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )
        batch.add_column(sa.Column("resent_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("resent_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )
    op.create_index("ix_email_message_failed_at", "email_message", ["failed_at"])
    _fold_stored_prospects()
    for name, columns in INDEXES.items():
        op.create_index(name, "prospect", columns)
    op.create_table(
        tallies.PROSPECT.name,
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("sales_integration_enabled", sa.Boolean(), nullable=False),
        sa.Column("reason_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("status", "sales_integration_enabled", "reason_code"),
    )
    dialect = op.get_bind().dialect.name
    for statement in [*tallies.PROSPECT.refill(dialect), *tallies.PROSPECT.create(dialect)]:
        op.execute(statement)
    _index_words(dialect)


def _index_words(dialect: str) -> None:
    """The index that finds a word anywhere in the prospects' words (`models.search`)."""
    if dialect == "postgresql":
        for statement in TRIGRAM_EXTENSION["postgresql"]:
            op.execute(statement)
        index = PROSPECT_WORDS.index()
        op.create_index(
            index.name or "",
            "prospect",
            ["search_text"],
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        )
    for statement in [*PROSPECT_WORDS.create(dialect), *PROSPECT_WORDS.refill(dialect)]:
        op.execute(statement)


def _fold_stored_prospects() -> None:
    connection = op.get_bind()
    prospect = sa.table(
        "prospect",
        *(
            sa.column(name)
            for name in (
                "id",
                "company_name",
                "first_name",
                "last_name",
                "email",
                "onboarding_id",
                "search_text",
                "company_key",
            )
        ),
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(
                prospect.c.id,
                prospect.c.company_name,
                prospect.c.first_name,
                prospect.c.last_name,
                prospect.c.email,
                prospect.c.onboarding_id,
            )
            .where(prospect.c.id > last)
            .order_by(prospect.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        connection.execute(
            prospect.update()
            .where(prospect.c.id == sa.bindparam("row_id"))
            .values(search_text=sa.bindparam("text"), company_key=sa.bindparam("key")),
            [
                {"row_id": row.id, "text": search_text(*row[1:]), "key": company_key(row[1])}
                for row in rows
            ],
        )
        last = rows[-1].id


def downgrade() -> None:
    """Downgrade schema."""
    dialect = op.get_bind().dialect.name
    for statement in [*PROSPECT_WORDS.drop(dialect), *tallies.PROSPECT.drop(dialect)]:
        op.execute(statement)
    if dialect == "postgresql":
        op.drop_index(PROSPECT_WORDS.index().name or "", table_name="prospect")
    op.drop_table(tallies.PROSPECT.name)
    for name in INDEXES:
        op.drop_index(name, table_name="prospect")
    op.drop_index("ix_email_message_failed_at", table_name="email_message")
    with op.batch_alter_table("email_message") as batch:
        for column in ("resent_by", "resent_at", "failure", "failed_at"):
            batch.drop_column(column)
    with op.batch_alter_table("prospect") as batch:
        batch.drop_column("company_key")
        batch.drop_column("search_text")

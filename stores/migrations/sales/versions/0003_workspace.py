"""The lead and opportunity views at size: search and sort columns, their indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:00:00.000000

The lead views (and the opportunities, through their lead) find a request by the folded
words of its company, contact, email and reference (`lead.search_text`) and sort by the
folded company (`company_key`); the leads already stored get theirs here. Indexes serve
each sort by keyset, and hold what the filters test; a trigram index finds a word
anywhere in the words (SQLite: an FTS5 table; PostgreSQL: pg_trgm, whose extension is
created here). The counts per filter come from `lead_tally` and `opportunity_tally`,
which triggers keep (`models.tallies`), counted here once from the rows already stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from models import tallies
from models.search import LEAD_WORDS, TRIGRAM_EXTENSION, company_key, search_text

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000
INDEXES = {
    "lead": {
        "ix_lead_source_created": ["source", "created_at", "id", "status", "reason_code"],
        "ix_lead_source_company_key": ["source", "company_key", "id"],
    },
    "opportunity": {
        "ix_opportunity_created": ["created_at", "id", "status", "reason_code"],
        "ix_opportunity_lead_id": ["lead_id"],
    },
}


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("lead") as batch:
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
    _fold_stored_leads()
    for table, indexes in INDEXES.items():
        for name, columns in indexes.items():
            op.create_index(name, table, columns)
    op.create_table(
        tallies.LEAD.name,
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "status", "reason_code"),
    )
    op.create_table(
        tallies.OPPORTUNITY.name,
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("status", "reason_code"),
    )
    dialect = op.get_bind().dialect.name
    for tally in (tallies.LEAD, tallies.OPPORTUNITY):
        for statement in [*tally.refill(dialect), *tally.create(dialect)]:
            op.execute(statement)
    _index_words(dialect)


def _index_words(dialect: str) -> None:
    """The index that finds a word anywhere in the leads' words (`models.search`)."""
    if dialect == "postgresql":
        for statement in TRIGRAM_EXTENSION["postgresql"]:
            op.execute(statement)
        index = LEAD_WORDS.index()
        op.create_index(
            index.name or "",
            "lead",
            ["search_text"],
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        )
    for statement in [*LEAD_WORDS.create(dialect), *LEAD_WORDS.refill(dialect)]:
        op.execute(statement)


def _fold_stored_leads() -> None:
    connection = op.get_bind()
    lead = sa.table(
        "lead",
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
                lead.c.id,
                lead.c.company_name,
                lead.c.first_name,
                lead.c.last_name,
                lead.c.email,
                lead.c.onboarding_id,
            )
            .where(lead.c.id > last)
            .order_by(lead.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        connection.execute(
            lead.update()
            .where(lead.c.id == sa.bindparam("row_id"))
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
    for statement in LEAD_WORDS.drop(dialect):
        op.execute(statement)
    if dialect == "postgresql":
        op.drop_index(LEAD_WORDS.index().name or "", table_name="lead")
    for tally in (tallies.LEAD, tallies.OPPORTUNITY):
        for statement in tally.drop(dialect):
            op.execute(statement)
        op.drop_table(tally.name)
    for table, indexes in INDEXES.items():
        for name in indexes:
            op.drop_index(name, table_name=table)
    with op.batch_alter_table("lead") as batch:
        batch.drop_column("company_key")
        batch.drop_column("search_text")

"""How many rows of a table stand in each status (and mode, and reason code): counts the
database keeps itself, so a queue's counts per filter cost a few rows, not a scan.

Each counted table has a tally table with one row per combination of the counted
columns seen so far, and triggers that move a row's count on every insert, update and
delete, whoever writes (the worker's activities, a migration, an operator's SQL): the
tally is right by construction, in the same transaction as the change. A NULL counted
value (a request with no reason code) is tallied as ''.

The triggers are the tally's schema, created with its table by the migrations and by
`metadata.create_all` (`attach`). Writes stay cheap: one upsert of one small row per
changed row; only changes of a counted column fire them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import DDL, Table, event


@dataclass(frozen=True)
class Tally:
    """The counts of `table` by `counted`, kept in `name`'s `row_count`."""

    table: str
    counted: tuple[str, ...]
    # Counted columns that may be NULL, tallied as ''.
    nullable: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return f"{self.table}_tally"

    def _value(self, row: str, column: str) -> str:
        value = f"{row}.{column}"
        return f"coalesce({value}, '')" if column in self.nullable else value

    def _add(self, row: str, sign: str) -> str:
        columns = ", ".join(self.counted)
        values = ", ".join(self._value(row, column) for column in self.counted)
        return (
            f"INSERT INTO {self.name} ({columns}, row_count) VALUES ({values}, {sign}1)"
            f" ON CONFLICT ({columns}) DO UPDATE SET row_count = {self.name}.row_count {sign} 1"
        )

    def _changed(self, distinct: str) -> str:
        return " OR ".join(f"OLD.{column} {distinct} NEW.{column}" for column in self.counted)

    def create(self, dialect: str) -> list[str]:
        """The triggers (and, on PostgreSQL, their function) that keep the tally."""
        counted = ", ".join(self.counted)
        if dialect == "postgresql":
            return [
                f"CREATE FUNCTION {self.name}_count() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                "BEGIN\n"
                f"  IF TG_OP IN ('UPDATE', 'DELETE') THEN {self._add('OLD', '-')}; END IF;\n"
                f"  IF TG_OP IN ('INSERT', 'UPDATE') THEN {self._add('NEW', '+')}; END IF;\n"
                "  RETURN NULL;\n"
                "END $$",
                f"CREATE TRIGGER {self.name}_insert_delete AFTER INSERT OR DELETE ON {self.table}"
                f" FOR EACH ROW EXECUTE FUNCTION {self.name}_count()",
                f"CREATE TRIGGER {self.name}_update AFTER UPDATE OF {counted} ON {self.table}"
                f" FOR EACH ROW WHEN ({self._changed('IS DISTINCT FROM')})"
                f" EXECUTE FUNCTION {self.name}_count()",
            ]
        return [
            f"CREATE TRIGGER {self.name}_insert AFTER INSERT ON {self.table}"
            f" BEGIN {self._add('NEW', '+')}; END",
            f"CREATE TRIGGER {self.name}_delete AFTER DELETE ON {self.table}"
            f" BEGIN {self._add('OLD', '-')}; END",
            f"CREATE TRIGGER {self.name}_update AFTER UPDATE OF {counted} ON {self.table}"
            f" WHEN {self._changed('IS NOT')}"
            f" BEGIN {self._add('OLD', '-')}; {self._add('NEW', '+')}; END",
        ]

    def triggers(self, dialect: str) -> list[str]:
        """The names of the triggers `create` makes."""
        events = (
            ("insert_delete", "update")
            if dialect == "postgresql"
            else ("insert", "delete", "update")
        )
        return [f"{self.name}_{event}" for event in events]

    def drop(self, dialect: str) -> list[str]:
        if dialect == "postgresql":
            return [
                f"DROP TRIGGER IF EXISTS {self.name}_insert_delete ON {self.table}",
                f"DROP TRIGGER IF EXISTS {self.name}_update ON {self.table}",
                f"DROP FUNCTION IF EXISTS {self.name}_count()",
            ]
        return [
            f"DROP TRIGGER IF EXISTS {self.name}_{event}"
            for event in ("insert", "delete", "update")
        ]

    def refill(self, dialect: str) -> list[str]:
        """Count the table afresh: for a tally made after its table has rows."""
        columns = ", ".join(self.counted)
        values = ", ".join(self._value(self.table, column) for column in self.counted)
        return [
            f"DELETE FROM {self.name}",
            f"INSERT INTO {self.name} ({columns}, row_count)"
            f" SELECT {values}, count(*) FROM {self.table} GROUP BY {values}",
        ]


class Triggered(Protocol):
    """What a table's triggers keep (a tally, a word index), as DDL for each database."""

    @property
    def name(self) -> str: ...

    def create(self, dialect: str) -> list[str]: ...

    def drop(self, dialect: str) -> list[str]: ...

    def refill(self, dialect: str) -> list[str]: ...

    def triggers(self, dialect: str) -> list[str]: ...


def attach(kept: Triggered, table: Table, before: dict[str, list[str]] | None = None) -> None:
    """`metadata.create_all` makes what `kept` needs with its table, on either database
    (and runs `before`'s statements, by database, before the table is made)."""
    for dialect in ("sqlite", "postgresql"):
        for statement in (before or {}).get(dialect, []):
            event.listen(table, "before_create", DDL(statement).execute_if(dialect=dialect))
        for statement in kept.create(dialect):
            event.listen(table, "after_create", DDL(statement).execute_if(dialect=dialect))


PROSPECT = Tally(
    "prospect", ("status", "sales_integration_enabled", "reason_code"), frozenset({"reason_code"})
)
LEAD = Tally("lead", ("source", "status", "reason_code"), frozenset({"reason_code"}))
OPPORTUNITY = Tally("opportunity", ("status", "reason_code"), frozenset({"reason_code"}))

"""Each request's payload encryption key, kept wrapped in Commerce (see `infra/encryption.py`).

The wrapping and unwrapping is `infra/encryption.py`'s; this module only keeps the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, update
from sqlmodel import Session, col, select

from models.commerce import DataKey, Prospect
from stores.engine import Sql, by_key, insert_ignoring, one, transact, transact_sql

DATA_KEY = DataKey.__table__  # type: ignore[attr-defined]
_KEPT = by_key(DATA_KEY, ("onboarding_id",), "master_key_id", "wrapped_key")


@dataclass(frozen=True)
class Wrapped:
    """A request's key as kept: wrapped by a master key, or destroyed (None)."""

    master_key_id: str
    wrapped_key: bytes | None


def read(engine: Engine, onboarding_id: str) -> Wrapped | None:
    """The request's key as kept (None: it has none): one statement, no transaction."""
    with engine.connect() as connection:
        row = Sql(connection).execute(_KEPT, {"onboarding_id": onboarding_id}).first()
    return Wrapped(*row) if row is not None else None


def keep(
    engine: Engine, onboarding_id: str, master_key_id: str, wrapped: bytes, at: datetime
) -> Wrapped | None:
    """Keep a new data key for the request: None when it is kept, else the one the request
    already has (made first by a concurrent attempt, or destroyed)."""

    def work(connection: Sql) -> Wrapped | None:
        key = {"onboarding_id": onboarding_id}
        kept = connection.execute(
            insert_ignoring(connection, DATA_KEY, "id"),
            {**key, "master_key_id": master_key_id, "wrapped_key": wrapped, "created_at": at},
        ).scalar()
        if kept is not None:
            return None
        row = connection.execute(_KEPT, key).one()
        return Wrapped(*row)

    return transact_sql(engine, work)


def destroy(engine: Engine, onboarding_id: str, at: datetime) -> bool:
    """Destroy the request's data key; False if it had none or it was already destroyed."""

    def work(session: Session) -> bool:
        row = one(session, DataKey, onboarding_id=onboarding_id)
        if row is None or row.wrapped_key is None:
            return False
        row.wrapped_key, row.destroyed_at = None, at
        return True

    return transact(engine, work)


def mark_duplicate(connection: Sql | Session, onboarding_id: str, open_request: str) -> None:
    """A duplicate submission's workflow met `open_request`: its key goes with that one's."""
    connection.execute(
        update(DATA_KEY)
        .where(DATA_KEY.c.onboarding_id == onboarding_id)
        .values(duplicate_of=open_request)
    )


def duplicates_of(engine: Engine, onboarding_id: str) -> list[str]:
    """The duplicate submissions' workflows whose live keys go with this request's."""
    with Session(engine) as session:
        query = select(DataKey.onboarding_id).where(
            DataKey.duplicate_of == onboarding_id, col(DataKey.wrapped_key).is_not(None)
        )
        return list(session.exec(query))


def to_shred(engine: Engine, orphaned_before: datetime, limit: int) -> list[str]:
    """Requests whose data key may go once their workflow has closed: those whose personal
    data is anonymised (and the duplicate submissions that met them), and those that never
    became a prospect (a duplicate submission's own workflow, one an operator ended first)
    made before `orphaned_before`."""
    with Session(engine) as session:
        anonymised = (
            select(DataKey.onboarding_id)
            .join(
                Prospect,
                col(Prospect.onboarding_id)
                == func.coalesce(col(DataKey.duplicate_of), col(DataKey.onboarding_id)),
            )
            .where(col(DataKey.wrapped_key).is_not(None), col(Prospect.anonymised_at).is_not(None))
        )
        orphaned = (
            select(DataKey.onboarding_id)
            .outerjoin(Prospect, col(Prospect.onboarding_id) == col(DataKey.onboarding_id))
            .where(
                col(DataKey.wrapped_key).is_not(None),
                col(Prospect.id).is_(None),
                col(DataKey.created_at) < orphaned_before,
            )
        )
        found = list(session.exec(anonymised.limit(limit)))
        found += list(session.exec(orphaned.limit(max(limit - len(found), 0))))
        return found


def wrapped_by(engine: Engine, master_key_ids: set[str]) -> list[DataKey]:
    """Live data keys wrapped by any of these master keys (to wrap them again)."""
    with Session(engine) as session:
        query = select(DataKey).where(
            col(DataKey.wrapped_key).is_not(None), col(DataKey.master_key_id).in_(master_key_ids)
        )
        return list(session.exec(query))


def rewrap(engine: Engine, onboarding_id: str, master_key_id: str, wrapped: bytes) -> None:
    def work(session: Session) -> None:
        row = one(session, DataKey, onboarding_id=onboarding_id)
        if row is not None and row.wrapped_key is not None:
            row.master_key_id, row.wrapped_key = master_key_id, wrapped

    transact(engine, work)


# How long a data key of a request that never became a prospect stays: long enough for a
# caller to send its submission again and read the answer Temporal kept.
ORPHAN_GRACE = timedelta(days=1)

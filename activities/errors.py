"""Failures no retry can fix: raised non-retryable, with a `type` that names the problem."""

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError
from sqlmodel import Session
from temporalio.exceptions import ApplicationError

from stores.engine import transact, transact_sql

T = TypeVar("T")


def missing_record(what: str, onboarding_id: str) -> ApplicationError:
    return ApplicationError(
        f"{what} for onboarding request {onboarding_id} does not exist",
        type="MissingRecord",
        non_retryable=True,
    )


def conflicting_state(message: str) -> ApplicationError:
    return ApplicationError(message, type="ConflictingState", non_retryable=True)


def invalid_data(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidData", non_retryable=True)


def write(engine: Engine, work: Callable[[Session], T]) -> T:
    """`transact`, where a row the database refuses (too long, wrong type) fails for good.

    Everything else a database raises (down, locked, connection lost) is left to the
    activity's retry policy.
    """
    try:
        return transact(engine, work)
    except DataError as err:
        raise _refused(err) from err


def write_sql(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`write` for the hot paths' SQL (`transact_sql`)."""
    try:
        return transact_sql(engine, work)
    except DataError as err:
        raise _refused(err) from err


def _refused(err: DataError) -> ApplicationError:
    return invalid_data(f"the store refused the row: {err.orig}")

"""Failures no retry can fix: raised non-retryable, with a `type` that names the problem.

An expected refusal is the product answering as designed (the user asked for something the rules
do not allow); the others are faults (data that should be there is not).
"""

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DataError
from sqlmodel import Session
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from stores.engine import Sql, transact, transact_sql

T = TypeVar("T")


def expected_refusal(message: str, type: str) -> ApplicationError:
    """An expected refusal: BENIGN, so neither the SDK's log (DEBUG, not WARNING with a
    traceback) nor its failure metrics count it as a fault; the worker logs it in one
    line (`logs.RefusalsInOneLine`)."""
    return ApplicationError(
        message, type=type, non_retryable=True, category=ApplicationErrorCategory.BENIGN
    )


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


def write_sql(engine: Engine, work: Callable[[Sql], T]) -> T:
    """`write` for the hot paths' SQL (`transact_sql`)."""
    try:
        return transact_sql(engine, work)
    except DataError as err:
        raise _refused(err) from err


def _refused(err: DataError) -> ApplicationError:
    return invalid_data(f"the store refused the row: {err.orig}")

"""Failures no retry can fix: raised non-retryable, with a `type` that names the problem."""

from temporalio.exceptions import ApplicationError


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

"""The activity options every workflow shares: retries, store writes, emails.

A workflow module imports these rather than the onboarding workflow for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

# Stores or the mail server being down is worth waiting out: retry with backoff, for
# as long as it takes. Bad data is raised non-retryable by the activities themselves.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
STORE_WRITE_TIMEOUT = timedelta(seconds=30)
# A store write retries inside its workflow task only briefly: past this, each retry
# waits on a timer, so while a store is down the request still answers its status
# query and refuses decisions at once instead of holding its task for minutes.
STORE_LOCAL_RETRY = timedelta(seconds=1)
SEND_EMAIL_TIMEOUT = timedelta(seconds=60)
# A slow send heartbeats every few seconds: a dead worker's attempt is retried this soon.
SEND_EMAIL_HEARTBEAT = timedelta(seconds=10)
A = TypeVar("A")
R = TypeVar("R")


def store_write(activity: Callable[[Any, A], R], arg: A, summary: str) -> Awaitable[R]:
    """A store write as a local activity, with the options every store write has."""
    return workflow.execute_local_activity_method(
        activity,
        arg,
        summary=summary,
        start_to_close_timeout=STORE_WRITE_TIMEOUT,
        local_retry_threshold=STORE_LOCAL_RETRY,
        retry_policy=RETRY,
    )


# Every email's activity options.
EMAIL_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": SEND_EMAIL_TIMEOUT,
    "heartbeat_timeout": SEND_EMAIL_HEARTBEAT,
    "retry_policy": RETRY,
}
# An email's first attempt, a local activity in the workflow task that asks for it
# (workflows/emails.py): once, for as long as the mail server's timeout and recording the
# send through a short store outage take (SMTP_TIMEOUT_SECONDS, 10 s by default, and
# activities.email.MARK_SENT_BACKOFF, 16 s); a failure goes on as a regular activity.
FIRST_EMAIL_ATTEMPT: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(maximum_attempts=1),
}

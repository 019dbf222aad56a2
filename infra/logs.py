"""Log lines without personal data: email addresses are replaced wherever they appear.

Our own log lines name requests by their ids, never by their people; this catches what
others print: a mail server's refusal quoting an address, an exception's message, a
search for an email in a logged URL. The worker formats every line through
`RedactingFormatter`; the web app's loggers filter through `web.redaction`.

Tracebacks are for faults: an activity's expected refusal is one line
(`RefusalsInOneLine`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

EMAIL = "[email]"
# An address as typed, or percent-encoded in a URL (`%40`).
_ADDRESS = re.compile(r"[\w.!#$%'*+^`{|}~-]+(?:@|%40)[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")


def redact_emails(text: str) -> str:
    return _ADDRESS.sub(EMAIL, text)


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then takes out email addresses: message, arguments and traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_emails(super().format(record))


def install(level: int, fmt: str) -> None:
    """`logging.basicConfig`, with every line of the root handler redacted."""
    logging.basicConfig(level=level, format=fmt)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(fmt))


class RefusalsInOneLine(Interceptor):
    """The worker's log of an activity's expected refusal (a BENIGN ApplicationError,
    `activities.errors.expected_refusal`): one INFO line naming the activity and the refusal's
    kind, where the SDK would print a WARNING with its traceback (it keeps that at DEBUG).
    The refusal's message stays out: it may name a person."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _LoggedRefusals(next)


class _LoggedRefusals(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except ApplicationError as err:
            if err.category is ApplicationErrorCategory.BENIGN:
                activity.logger.info("%s refused: %s", activity.info().activity_type, err.type)
            raise

"""Log lines without personal data: email addresses are replaced wherever they appear.

Our own log lines name requests by their ids, never by their people; this catches what
others print: a mail server's refusal quoting an address, an exception's message, a
search for an email in a logged URL. The worker formats every line through
`RedactingFormatter`; the web app's loggers filter through `web.redaction`.
"""

from __future__ import annotations

import logging
import re

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

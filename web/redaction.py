"""Secrets that travel in a path never reach the log.

uvicorn's access log prints every request's path, and some paths carry a secret: the
requester's status link, and the partner's activation, invitation and password-reset
links. `SECRET_PATHS` names them all, in one place; `RedactSecrets` prints each with
its secret segments replaced, keeping the path's shape, and any email address (a search
in All prospects carries one in its query) as `[email]`.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable

from infra.logs import redact_emails

REDACTED = "[redacted]"
# Every path under which a secret travels; its `{token}` segments are the secret, other
# `{…}` segments (an id) are kept. A route that takes a token in its path belongs here.
SECRET_PATHS = (
    "/requests/{onboarding_id}/{token}",
    "/activate/{token}",
    "/password/reset/{token}",
    "/links/{token}/fresh",
)
# Loggers that print request paths (the app's own names the path of an unexpected error).
PATH_LOGGERS = ("uvicorn.access", "uvicorn.error", "web")

_SEGMENT = r"[^/?#\s\"']+"


def _pattern(template: str) -> re.Pattern[str]:
    parts = []
    for segment in template.strip("/").split("/"):
        if segment == "{token}":
            parts.append(f"({_SEGMENT})")
        elif segment.startswith("{"):
            parts.append(_SEGMENT)
        else:
            parts.append(re.escape(segment))
    return re.compile("/" + "/".join(parts) + r"(?=$|[/?#\s\"'])")


PATTERNS = tuple(_pattern(template) for template in SECRET_PATHS)


def redact(text: str) -> str:
    """`text` with every secret segment of every secret path replaced by `REDACTED`, and
    every email address by `[email]`."""
    for pattern in PATTERNS:
        text = pattern.sub(_redacted, text)
    return redact_emails(text)


def _redacted(match: re.Match[str]) -> str:
    found, start = match.group(0), match.start(0)
    kept, last = [], 0
    for group in range(1, (match.lastindex or 0) + 1):
        begin, end = (at - start for at in match.span(group))
        kept += [found[last:begin], REDACTED]
        last = end
    return "".join(kept) + found[last:]


class RedactSecrets(logging.Filter):
    """Rewrites a record's message and arguments; formatters that read the arguments
    one by one (uvicorn's access formatter does) still get as many.

    A traceback is written out here, redacted, as the record's `exc_text`, which
    formatters print instead of formatting the exception again: an exception's message
    may quote what was searched for or sent.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            printed = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact(printed.rstrip("\n"))
        return True


def redact_secrets(loggers: Iterable[str] = PATH_LOGGERS) -> None:
    """Install the filter on `loggers`, once however often the app is built."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
            logger.addFilter(RedactSecrets())

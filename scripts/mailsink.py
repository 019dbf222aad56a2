"""A local SMTP sink for development and tests: every message it accepts becomes a file.

`python -m scripts.mailsink` listens on SMTP_HOST:SMTP_PORT (default localhost:1025) and keeps
each message as an `.eml` file under `var/mail/`.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import signal
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import uuid4

from aiosmtpd.controller import Controller

from settings import VAR_DIR, get_settings

DEFAULT_SPOOL = VAR_DIR / "mail"


class SpoolHandler:
    """aiosmtpd handler that writes each accepted message to its own file, atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid4().hex[:8]}"
        partial = self.directory / f".{name}.tmp"
        partial.write_bytes(envelope.original_content or envelope.content)
        partial.rename(self.directory / f"{name}.eml")
        return "250 Message accepted for delivery"


def read_spool(directory: Path) -> list[EmailMessage]:
    """Every message in the spool, oldest first."""
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted(directory.glob("*.eml"))
    ]


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=settings.smtp_host)
    parser.add_argument("--port", type=int, default=settings.smtp_port)
    parser.add_argument("--spool", type=Path, default=DEFAULT_SPOOL)
    args = parser.parse_args()

    controller = Controller(SpoolHandler(args.spool), hostname=args.host, port=args.port)
    controller.start()
    print(
        f"mailsink: SMTP on {args.host}:{args.port}, keeping messages in {args.spool}", flush=True
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()

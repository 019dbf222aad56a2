"""`python -m web`: serve the web app on WEB_HOST:WEB_PORT."""

from __future__ import annotations

import asyncio
import sys
from typing import NoReturn

import h11
import uvicorn
from pydantic import ValidationError
from uvicorn.protocols.http.h11_impl import H11Protocol

from client.connection import exit_process
from infra import tracing
from settings import describe, get_settings
from web.app import SERVICE, create_app
from web.i18n import CatalogueMissing

# A request's headers arrive within this, or its connection is closed.
HEADERS_WITHIN = 10.0
# An idle keep-alive connection is closed after this (uvicorn's default, said here).
KEEP_ALIVE = 5
# The most a request's line and headers may take; h11's default is 16 KiB too.
MAX_HEADERS_BYTES = 16 * 1024


class HeadersDeadline(H11Protocol):
    """uvicorn's HTTP/1.1, with a deadline for each request's headers.

    uvicorn times out only an idle keep-alive connection, and any byte received
    cancels that: a client sending its headers a byte at a time, or never finishing
    them, would hold its connection for ever, and a few hundred such hold the server.
    """

    deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = self.loop.call_later(HEADERS_WITHIN, self._headers_overdue)

    def _headers_overdue(self) -> None:
        # IDLE: the request line and headers are not all in yet (h11 moves on once they
        # are, so a request still being answered is left alone).
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def serve() -> int:
    # A configuration a person must fix: one line, no traceback.
    try:
        settings = get_settings()
        tracing.configure(settings, SERVICE)
        app = create_app(settings)
    except ValidationError as err:
        print(f"web: {describe(err)}", file=sys.stderr)
        return 2
    except (ValueError, CatalogueMissing) as err:
        print(f"web: {err}", file=sys.stderr)
        return 2
    # Forwarded headers are the app's to read, from TRUSTED_PROXIES only: uvicorn's own
    # reading would trust FORWARDED_ALLOW_IPS (loopback by default) instead.
    uvicorn.run(
        app,
        host=settings.web_host,
        port=settings.web_port,
        proxy_headers=False,
        http=HeadersDeadline,
        timeout_keep_alive=KEEP_ALIVE,
        h11_max_incomplete_event_size=MAX_HEADERS_BYTES,
    )
    return 0


def main() -> NoReturn:
    exit_process(serve())


if __name__ == "__main__":
    main()

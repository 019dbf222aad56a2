"""The mail relay as the settings describe it: implicit TLS or STARTTLS, the certificate
checked (against SMTP_CA_FILE for a private relay), a login when there is a username.

Every connection to it follows this one rule: the emails' sends and the readiness checks.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from contextlib import suppress
from dataclasses import dataclass

import aiosmtplib

from settings import Settings

# A connection unused this long may have been closed by the relay (most close idle ones
# after a minute or more): a NOOP first says whether it is still there.
CHECK_IDLE_AFTER = 5.0


def relay(settings: Settings) -> aiosmtplib.SMTP:
    """An unconnected client; `async with` connects, greets, secures and logs in."""
    return aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        use_tls=settings.smtp_tls,
        # Never opportunistic: a relay that offers STARTTLS is checked only when it is asked for.
        start_tls=settings.smtp_starttls,
        validate_certs=True,
        cert_bundle=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
        timeout=settings.smtp_timeout_seconds,
    )


def refusal(err: BaseException) -> str | None:
    """Why the relay refuses us until an operator changes a setting; None when it is not that.

    A wrong login and a certificate we do not trust fail the same way on every attempt;
    a relay that is down or slow is another matter, which a retry cures.
    """
    if isinstance(err, aiosmtplib.SMTPAuthenticationError):
        return f"the mail server refuses our login: {err.code} {err.message}"
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"the mail server's certificate is not trusted: {seen.verify_message}"
        seen = seen.__cause__ or seen.__context__
    return None


class Relay:
    """One connection to the relay, opened on the first send and kept for the next.

    A worker's emails go through it one at a time, as SMTP takes them on one connection:
    a new connection per email (connect, greet, secure, log in, quit) cost more than
    the email. One idle a while is asked NOOP before it carries an email, and made anew
    when it does not answer; one that failed in a send is dropped, since the server's
    state in the transaction is unknown (the activity's retry sends on a new one).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()
        self._used_at = 0.0

    async def send(self, mail: Mail) -> None:
        async with self._lock:
            client = await self._connected()
            try:
                await client.sendmail(
                    mail.sender, [mail.recipient], mail.data, mail_options=list(mail.options)
                )
            except BaseException:
                self._drop()
                raise
            self._used_at = time.monotonic()

    async def aclose(self) -> None:
        """Say goodbye to the relay (QUIT), if connected."""
        async with self._lock:
            client, self._client = self._client, None
            if client is not None and client.is_connected:
                with suppress(aiosmtplib.SMTPException, OSError):
                    await client.quit()

    async def _connected(self) -> aiosmtplib.SMTP:
        client = self._client
        if client is not None and client.is_connected:
            if time.monotonic() - self._used_at < CHECK_IDLE_AFTER:
                return client
            try:
                await client.noop()
                return client
            except (aiosmtplib.SMTPException, OSError):
                self._drop()
        client = relay(self.settings)
        await client.connect()
        self._client, self._used_at = client, time.monotonic()
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


@dataclass(frozen=True)
class Mail:
    """A message as it goes on the wire, with its envelope."""

    sender: str
    recipient: str
    data: bytes
    # For the worker's metrics and traces: the `X-Onboarding-Event` it carries.
    event: str
    options: tuple[str, ...] = ()

"""Onboarding emails: rendered from `templates/email`, sent over SMTP, recorded in an outbox.

The `email_message` row is written before the message goes out and marked when the
server accepts it, so a retried activity never sends a notification that was already
sent. Between the two, a heartbeat records the acceptance, so a retry after a failure to
mark only marks. Only a crash in that instant can send twice, and the copy has the same
Message-ID, so receivers can tell.

A send that takes a while (a slow mail server) heartbeats every few seconds, so when its
worker dies the attempt is retried within the workflow's heartbeat timeout rather than
its start-to-close timeout; a quick send, the usual one, heartbeats never.

Whatever the requester typed is rendered inert: never in a link, and broken up so that
no mail client turns a web address in it into one (see `inert`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr
from pathlib import Path

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session
from temporalio import activity

from activities.errors import invalid_data, write
from links import status_url
from models.commerce import EmailMessage
from models.payloads import EmailKind, SendEmailInput
from settings import PROJECT_DIR, Settings
from stores.engine import get_or_create

TEMPLATES_DIR = PROJECT_DIR / "templates" / "email"
SENT = "sent"
MARK_SENT_BACKOFF = (0.2, 0.5, 1, 2, 4, 8)
# Well inside the workflow's heartbeat timeout for the email (10 s).
KEEP_ALIVE_EVERY = 3.0
# Where a mail client's link detector reads a scheme, a host or an address. A zero-width
# space before each is invisible to a reader and ends the detector's match.
_LINKABLE = re.compile(r"[.:@]")
_ZERO_WIDTH_SPACE = "\u200b"


class Verbatim(str):
    """Text the product vouches for (its own links, the address the email goes to)."""


def inert(value: object) -> object:
    """Every value a template prints: user text can never read as a link (Jinja's finalize).

    Company, names, website and reasons are typed by people; shown as typed, "Visit
    https://evil.example" would become a link in most mail clients, in an email that
    comes from us. Only `Verbatim` values print unchanged.
    """
    if isinstance(value, Verbatim) or not isinstance(value, str):
        return value
    return _LINKABLE.sub(lambda found: _ZERO_WIDTH_SPACE + found[0], value)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class EmailRenderer:
    """Renders an email's subject, text and HTML parts in the requester's language.

    `secret` signs the requester's status link, as the web app does (see `links`).
    """

    def __init__(self, site_url: str, secret: bytes, templates_dir: Path = TEMPLATES_DIR) -> None:
        self.site_url = site_url.rstrip("/")
        self.secret = secret
        self.env = Environment(
            loader=FileSystemLoader(templates_dir),
            autoescape=select_autoescape(enabled_extensions=("html",)),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            finalize=inert,
        )

    def render(self, input: SendEmailInput) -> RenderedEmail:
        request = input.request
        context = {
            "onboarding_id": input.onboarding_id,
            "first_name": request.first_name,
            "last_name": request.last_name,
            "company": request.company,
            "website": request.website,
            # The address this email goes to: whoever reads it owns it.
            "email": Verbatim(request.email),
            "reason": input.reason,
            "site_url": Verbatim(self.site_url),
            "sign_in_url": Verbatim(f"{self.site_url}/sign-in"),
            "apply_url": Verbatim(f"{self.site_url}/apply"),
            "status_url": Verbatim(status_url(self.site_url, self.secret, input.onboarding_id)),
        }
        prefix = f"{request.locale}/{input.kind.value}"
        subject = self.env.get_template(f"{prefix}.subject.txt").render(context)
        return RenderedEmail(
            subject=" ".join(subject.split()),
            text=self.env.get_template(f"{prefix}.txt").render(context),
            html=self.env.get_template(f"{prefix}.html").render(context),
        )


def message_id_for(kind: EmailKind, onboarding_id: str, mail_from: str, period: str = "") -> str:
    """The same Message-ID on every attempt at the same notification."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
    notification = f"{onboarding_id}.{period}" if period else onboarding_id
    return f"<{kind.event}.{notification}@{domain}>"


class EmailActivities:
    """Sends each onboarding notification once and leaves one `email_message` row for it."""

    def __init__(self, commerce: Engine, settings: Settings, renderer: EmailRenderer) -> None:
        self.commerce = commerce
        self.settings = settings
        self.renderer = renderer

    @activity.defn
    async def send_onboarding_email(self, input: SendEmailInput) -> int:
        """Send one notification; returns its `email_message` id."""
        email = self.renderer.render(input)
        message_id = message_id_for(
            input.kind, input.onboarding_id, self.settings.mail_from, input.period
        )
        # An earlier attempt may have been accepted by the server and then failed to
        # record it: its heartbeat says so.
        progress = [SENT] if SENT in activity.info().heartbeat_details else []
        async with _keeping_alive(progress):
            row_id, already_sent = await asyncio.to_thread(self._claim, input, email, message_id)
            if not (already_sent or progress):
                await self._send(self._mime(input, email, message_id), input.request.email)
                progress.append(SENT)
            if not already_sent:
                await self._mark_sent_retrying(row_id)
        return row_id

    async def _send(self, message: MimeMessage, recipient: str) -> None:
        try:
            await aiosmtplib.send(
                message,
                hostname=self.settings.smtp_host,
                port=self.settings.smtp_port,
                username=self.settings.smtp_username,
                password=self.settings.smtp_password,
                start_tls=self.settings.smtp_starttls,
                timeout=self.settings.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as refused:
            if all(error.code >= 500 for error in refused.recipients):
                raise invalid_data(f"the mail server refuses {recipient}") from refused
            raise
        except aiosmtplib.SMTPDataError as refused:
            if refused.code >= 500:
                raise invalid_data(f"the mail server refuses the message: {refused}") from refused
            raise

    async def _mark_sent_retrying(self, row_id: int) -> None:
        """The message is out: record it, waiting out a short store outage in place.

        Failing here would make the activity retry, and the retry send a second copy:
        so the first failure heartbeats that the server took the message, which a retry
        reads. Only then: a heartbeat on every email would cost a server round trip each.
        """
        for delay in MARK_SENT_BACKOFF:
            try:
                await asyncio.to_thread(self._mark_sent, row_id)
                return
            except OperationalError:
                activity.logger.warning("could not record email %s as sent; retrying", row_id)
                activity.heartbeat(SENT)
                await asyncio.sleep(delay)
        await asyncio.to_thread(self._mark_sent, row_id)

    def _claim(
        self, input: SendEmailInput, email: RenderedEmail, message_id: str
    ) -> tuple[int, bool]:
        def work(session: Session) -> tuple[int, bool]:
            row = get_or_create(
                session,
                EmailMessage,
                lambda: EmailMessage(
                    onboarding_id=input.onboarding_id,
                    kind=input.kind.value,
                    period=input.period,
                    recipient=input.request.email,
                    subject=email.subject,
                    locale=input.request.locale,
                    message_id=message_id,
                    created_at=datetime.now(UTC),
                ),
                onboarding_id=input.onboarding_id,
                kind=input.kind.value,
                period=input.period,
            )
            row.attempts += 1
            assert row.id is not None
            return row.id, row.sent_at is not None

        return write(self.commerce, work)

    def _mark_sent(self, row_id: int) -> None:
        def work(session: Session) -> None:
            row = session.get(EmailMessage, row_id)
            if row is not None and row.sent_at is None:
                row.sent_at = datetime.now(UTC)

        write(self.commerce, work)

    def _mime(self, input: SendEmailInput, email: RenderedEmail, message_id: str) -> MimeMessage:
        request = input.request
        message = MimeMessage(policy=SMTP)
        message["From"] = self.settings.mail_from
        message["To"] = Address(display_name=request.contact_name, addr_spec=request.email)
        message["Subject"] = email.subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id
        message["X-Onboarding-Id"] = input.onboarding_id
        message["X-Onboarding-Event"] = input.kind.event
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        # After the parts: making the alternative moves Content-* headers into part one.
        message["Content-Language"] = request.locale
        return message


@asynccontextmanager
async def _keeping_alive(progress: list[str]) -> AsyncIterator[None]:
    """Heartbeat `progress` every few seconds while the body runs (never, if it is quick)."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(KEEP_ALIVE_EVERY)
            activity.heartbeat(*progress)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()

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
import base64
import binascii
import re
import secrets
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.policy import SMTP
from email.utils import format_datetime as mail_date
from email.utils import parseaddr
from functools import cache
from pathlib import Path
from typing import Any

import aiosmtplib
from babel.dates import format_datetime
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from opentelemetry import trace
from sqlalchemy import Engine, bindparam, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import smtp
from activities.errors import expected_refusal, invalid_data, missing_record, write, write_sql
from activities.partners import ensure_administrator
from activities.smtp import Mail
from infra.links import staff_page_path, status_url
from infra.logs import redact_emails
from models.activity_io import SendEmailInput, TeamReminderInput
from models.commerce import FAILURE_MAX, Customer, EmailMessage, PartnerUser, Prospect
from models.lifecycle import STAGE_WORDS, STAGES, TEAM_NAMES, ReasonCode, Role, whose_move
from models.partners import AccessLinkInput, LinkIssued, LinkPurpose, PartnerUserState
from models.requests import STORED, OnboardingRequest
from models.status import EmailKind
from models.workflow_io import ResendNotificationInput
from settings import PROJECT_DIR, Settings
from stores.accounts import issue_link, utc
from stores.engine import Sql, by_key, hot, insert_ignoring
from stores.reapply import may_apply_again_from

TEMPLATES_DIR = PROJECT_DIR / "templates" / "email"
SENT = "sent"
MARK_SENT_BACKOFF = (0.2, 0.5, 1, 2, 4, 8)
# Well inside the workflow's heartbeat timeout for the email (10 s).
KEEP_ALIVE_EVERY = 3.0
# Where a mail client's link detector reads a scheme, a host or an address. A zero-width
# space before each is invisible to a reader and ends the detector's match.
# The request's fields, as the prospect keeps them: what a resent email is written from.
REQUEST_COLUMNS = {
    "company": "company_name",
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone": "phone",
    "job_title": "job_title",
    "website": "website",
    "company_address": "company_address",
    "company_phone": "company_phone",
    "locale": "locale",
    "comments": "comments",
}
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

    def render(
        self,
        input: SendEmailInput,
        activation_token: str | None = None,
        may_apply_from: datetime | None = None,
    ) -> RenderedEmail:
        """`may_apply_from`, for a rejection: when the requester may apply again (None: at
        once; see `stores.reapply`)."""
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
            "expired": input.reason_code is ReasonCode.EXPIRED,
            # In the words and time zone of the form's own refusal page.
            "may_apply_from": Verbatim(
                format_datetime(may_apply_from, "long", tzinfo=UTC, locale=request.locale)
            )
            if may_apply_from
            else None,
            "status_url": Verbatim(status_url(self.site_url, self.secret, input.onboarding_id)),
            "activation_url": self.link_url(LinkPurpose.ACTIVATION, activation_token)
            if activation_token
            else None,
        }
        return self.render_kind(request.locale, input.kind.value, context)

    def render_team_reminder(self, input: TeamReminderInput, team: str) -> RenderedEmail:
        context = {
            "onboarding_id": input.onboarding_id,
            # The product's own words, printed as written (`inert` is for what people typed).
            "team": Verbatim(team),
            "company": input.company,
            "number": input.number,
            "stage": Verbatim(STAGE_WORDS[input.stage]),
            "waiting_for": Verbatim(STAGES[input.stage].waiting_for.replace("**", "")),
            # The product's own words: dates, not links.
            "since": Verbatim(f"{input.stage_since:%Y-%m-%d %H:%M} UTC"),
            "expires_at": Verbatim(f"{input.expires_at:%Y-%m-%d %H:%M} UTC")
            if input.expires_at
            else None,
            "page_url": Verbatim(self.site_url + staff_page_path(input.stage, input.records)),
        }
        # Staff read English, as the staff pages are.
        return self.render_kind("en", EmailKind.TEAM_REMINDER.value, context)

    def render_link(
        self, purpose: LinkPurpose, token: str, user: PartnerUser, organization: str, actor: str
    ) -> RenderedEmail:
        context = {
            "first_name": user.first_name,
            "last_name": user.last_name,
            "company": organization,
            "email": Verbatim(user.email),
            "invited_by": actor,
            "link_url": self.link_url(purpose, token),
        }
        return self.render_kind(user.locale, purpose.email_kind, context)

    def render_kind(self, locale: str, kind: str, context: dict[str, Any]) -> RenderedEmail:
        context = {
            **context,
            "site_url": Verbatim(self.site_url),
            "sign_in_url": Verbatim(f"{self.site_url}/signin"),
            "apply_url": Verbatim(f"{self.site_url}/apply"),
            "forgot_url": Verbatim(f"{self.site_url}/password/forgot"),
        }
        prefix = f"{locale}/{kind}"
        subject = self.env.get_template(f"{prefix}.subject.txt").render(context)
        return RenderedEmail(
            subject=" ".join(subject.split()),
            text=self.env.get_template(f"{prefix}.txt").render(context),
            html=self.env.get_template(f"{prefix}.html").render(context),
        )

    def link_url(self, purpose: LinkPurpose, token: str) -> Verbatim:
        """Where an emailed link leads: setting a first password, or a new one."""
        path = "password/reset" if purpose is LinkPurpose.PASSWORD_RESET else "activate"
        return Verbatim(f"{self.site_url}/{path}/{token}")


def message_id_for(kind: EmailKind, onboarding_id: str, mail_from: str, period: str = "") -> str:
    """The same Message-ID on every attempt at the same notification."""
    return _message_id(
        kind.event, f"{onboarding_id}.{period}" if period else onboarding_id, mail_from
    )


def _message_id(event: str, key: str, mail_from: str) -> str:
    return f"<{event}.{key}@{_domain(mail_from)}>"


@cache
def _domain(mail_from: str) -> str:
    """MAIL_FROM's domain: parsing the address costs more than the rest of an email's
    headers, and it is the same on every one."""
    return parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"


def _event(kind: str) -> str:
    """The `X-Onboarding-Event` header value of an email kind."""
    return kind.replace("_", "-")


class EmailActivities:
    """Sends each onboarding notification once and leaves one `email_message` row for it."""

    def __init__(self, commerce: Engine, settings: Settings, renderer: EmailRenderer) -> None:
        self.commerce = commerce
        self.settings = settings
        self.renderer = renderer
        self.relay = smtp.Relay(settings)
        # The same on every email: written (folded, encoded) once.
        self._from = SMTP.fold("From", settings.mail_from)
        self._sender = parseaddr(settings.mail_from)[1]

    async def aclose(self) -> None:
        """Close the connection to the mail server, if one is open."""
        await self.relay.aclose()

    @activity.defn
    async def send_onboarding_email(self, input: SendEmailInput) -> int:
        """Send one notification; returns its `email_message` id.

        The approval email carries the new administrator's activation link.
        """
        return await self._notify(input)

    @activity.defn
    async def resend_onboarding_email(self, input: ResendNotificationInput) -> int:
        """Send a request's failed notification again, written afresh from the stores: a
        new attempt at the same notification (its outbox row, its Message-ID), so the
        partner still gets it once. Returns its `email_message` id."""
        again = await asyncio.to_thread(self._written_again, input)
        return await self._notify(again, resent_by=input.actor)

    def _written_again(self, input: ResendNotificationInput) -> SendEmailInput:
        """The notification's input as the request's workflow gave it, from the prospect."""
        with Session(self.commerce) as session:
            prospect = session.exec(
                select(Prospect).where(Prospect.onboarding_id == input.onboarding_id)
            ).first()
        if prospect is None:
            raise missing_record("The prospect", input.onboarding_id)
        fields = {name: getattr(prospect, column) for name, column in REQUEST_COLUMNS.items()}
        request = OnboardingRequest.model_validate(
            {name: value for name, value in fields.items() if value is not None},
            # Judged when it came in, not again (see models.requests).
            context={STORED: True},
        )
        rejected = input.kind is EmailKind.PROSPECT_REJECTED
        return SendEmailInput(
            onboarding_id=input.onboarding_id,
            kind=input.kind,
            request=request,
            reason=prospect.decision_reason if rejected else None,
            period=input.period,
            reason_code=prospect.reason_code if rejected else None,
            may_apply_from=input.may_apply_from,
        )

    async def _notify(self, input: SendEmailInput, resent_by: str | None = None) -> int:
        request = input.request
        message_id = message_id_for(
            input.kind, input.onboarding_id, self.settings.mail_from, input.period
        )

        approval = input.kind is EmailKind.PROSPECT_APPROVED
        row = {
            "onboarding_id": input.onboarding_id,
            "kind": input.kind.value,
            "period": input.period,
            "recipient": request.email,
            "locale": request.locale,
            "message_id": message_id,
        }

        def claim(session: Session, fresh: bool) -> _Claimed:
            # Written before the row is claimed, unless it carries a link made in the claim.
            email = None
            may_apply_from = input.may_apply_from
            if input.kind is EmailKind.PROSPECT_REJECTED:
                may_apply_from = self._may_apply_again_from(session, input.onboarding_id)
                email = self.renderer.render(input, None, may_apply_from)
            elif not approval:
                email = self.renderer.render(input, None, may_apply_from)
            claimed = _claim(
                session, row, email, ("onboarding_id", "kind", "period"), resent_by=resent_by
            )
            if claimed.already_sent:
                return claimed
            if email is None:
                token = self._activation_token(session, input, fresh)
                email = self.renderer.render(input, token, may_apply_from)
                _entitle(session, claimed.row_id, email.subject)
            claimed.message = self.onboarding_message(input, email, message_id)
            return claimed

        return (await self._deliver(claim)).row_id

    def _may_apply_again_from(self, session: Session, onboarding_id: str) -> datetime | None:
        """When a rejected requester may apply again, by the policy the form applies."""
        rejected = session.exec(
            select(Prospect).where(Prospect.onboarding_id == onboarding_id)
        ).first()
        if rejected is None:
            return None
        return may_apply_again_from(rejected, self.settings.reapply_cooldown)

    @activity.defn
    async def send_team_reminder(self, input: TeamReminderInput) -> int:
        """Remind the team whose move it is that a request waits; returns its outbox row id.

        One email per reminder (its number is the notification's period), to
        SALES_TEAM_EMAIL or COMMERCE_TEAM_EMAIL (MAIL_FROM's address when unset).
        """
        role = whose_move(input.stage)
        if role is None:
            raise invalid_data(f"a request {input.stage.value} waits on nobody")
        team = TEAM_NAMES[role]
        address = self.team_address(role)
        period = str(input.number)
        kind = EmailKind.TEAM_REMINDER
        message_id = message_id_for(kind, input.onboarding_id, self.settings.mail_from, period)

        row = {
            "onboarding_id": input.onboarding_id,
            "kind": kind.value,
            "period": period,
            "recipient": address,
            "locale": "en",
            "message_id": message_id,
        }

        def claim(session: Session, fresh: bool) -> _Claimed:
            email = self.renderer.render_team_reminder(input, team)
            claimed = _claim(session, row, email, ("onboarding_id", "kind", "period"))
            if not claimed.already_sent:
                headers = {"X-Onboarding-Id": input.onboarding_id, "X-Onboarding-Event": kind.event}
                claimed.message = self._mime(
                    team.capitalize(), address, "en", email, message_id, headers
                )
            return claimed

        return (await self._deliver(claim)).row_id

    def team_address(self, role: Role) -> str:
        configured = {
            Role.SALES_REP: self.settings.sales_team_email,
            Role.COMMERCE_ADMIN: self.settings.commerce_team_email,
        }[role]
        return configured or parseaddr(self.settings.mail_from)[1]

    @activity.defn
    async def send_access_link(self, input: AccessLinkInput) -> LinkIssued:
        """Email a partner user a fresh sign-in link; every earlier unused one stops working."""
        kind = input.purpose.email_kind
        message_id = _message_id(_event(kind), input.notification_id, self.settings.mail_from)
        expires: list[datetime] = []

        def claim(session: Session, fresh: bool) -> _Claimed:
            user = session.get(PartnerUser, input.partner_user_id)
            if user is None:
                raise missing_record("The partner user", str(input.partner_user_id))
            if user.state == PartnerUserState.REMOVED:
                raise expected_refusal(
                    f"partner user {user.id} has been removed", "PartnerUserRemoved"
                )
            assert user.id is not None
            row = {
                "kind": kind,
                "partner_user_id": user.id,
                "recipient": user.email,
                "locale": user.locale,
                "message_id": message_id,
            }
            claimed = _claim(session, row, None, ("message_id",))
            link, token = issue_link(
                session,
                user.id,
                input.purpose,
                input.notification_id,
                self.settings.activation_ttl,
                fresh=fresh and not claimed.already_sent,
            )
            expires.append(utc(link.expires_at))
            if token is None:
                return claimed
            organization = session.get(Customer, user.organization_customer_id)
            email = self.renderer.render_link(
                input.purpose, token, user, organization.name if organization else "", input.actor
            )
            _entitle(session, claimed.row_id, email.subject)
            headers = {"X-Partner-User-Id": str(user.id), "X-Onboarding-Event": _event(kind)}
            name = f"{user.first_name} {user.last_name}"
            claimed.message = self._mime(name, user.email, user.locale, email, message_id, headers)
            return claimed

        claimed = await self._deliver(claim)
        return LinkIssued(
            notification_id=input.notification_id,
            expires_at=expires[-1],
            valid_for=self.settings.activation_ttl,
            email_message_id=claimed.row_id,
        )

    def _activation_token(self, session: Session, input: SendEmailInput, fresh: bool) -> str | None:
        """The approved requester's activation link, while their account awaits one."""
        user = ensure_administrator(session, input.onboarding_id, datetime.now(UTC))
        if user is None or user.state != PartnerUserState.INVITED:
            return None
        assert user.id is not None
        _, token = issue_link(
            session,
            user.id,
            LinkPurpose.ACTIVATION,
            f"approval-{input.onboarding_id}",
            self.settings.activation_ttl,
            fresh,
        )
        return token

    async def _deliver(self, claim: Callable[[Session, bool], _Claimed]) -> _Claimed:
        """Claim the outbox row, send unless it is sent, mark it: one email per notification.

        `claim` runs in one Commerce transaction and is told whether this attempt may
        make a fresh message (and token): not when an earlier attempt's message is out.
        """
        # An earlier attempt may have been accepted by the server and then failed to
        # record it: its heartbeat says so.
        progress = [SENT] if SENT in activity.info().heartbeat_details else []
        async with _keeping_alive(progress):
            claimed = await asyncio.to_thread(
                write, self.commerce, lambda session: claim(session, not progress)
            )
            if not (claimed.already_sent or progress):
                assert claimed.message is not None
                try:
                    await self._send(claimed.message)
                except ApplicationError as refused:
                    if refused.non_retryable:
                        await asyncio.to_thread(self._mark_failed, claimed.row_id, refused.message)
                    raise
                progress.append(SENT)
            if not claimed.already_sent:
                await self._mark_sent_retrying(claimed.row_id)
        return claimed

    async def _send(self, message: Mail) -> None:
        span = trace.get_tracer(__name__).start_as_current_span(
            "smtp send",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "server.address": self.settings.smtp_host,
                "server.port": self.settings.smtp_port,
                "b2b.email.kind": message.event,
            },
        )
        try:
            with span:
                await self.relay.send(message)
        except aiosmtplib.SMTPRecipientsRefused as refused:
            if all(error.code >= 500 for error in refused.recipients):
                _count(message, "refused")
                # The reason lands in the request's status, the outbox and the worker's log:
                # the server's words, without an address it may quote.
                said = "; ".join(f"{error.code} {error.message}" for error in refused.recipients)
                raise invalid_data(
                    f"the mail server refuses the recipient's address: {redact_emails(said)}"
                ) from refused
            _count(message, "retried")
            raise
        except (
            aiosmtplib.SMTPAuthenticationError,
            aiosmtplib.SMTPConnectError,
            ssl.SSLError,
        ) as err:
            reason = smtp.refusal(err)
            # The operator's to fix: retried a while, so that a fix in time still sends it,
            # then failed for good, naming why.
            if (
                reason is not None
                and activity.info().attempt >= self.settings.smtp_refused_attempts
            ):
                _count(message, "refused")
                raise invalid_data(reason) from err
            _count(message, "retried")
            raise
        except aiosmtplib.SMTPResponseException as refused:
            # 5xx is SMTP's "permanent": the same message would be refused again.
            if refused.code >= 500:
                _count(message, "refused")
                raise invalid_data(
                    f"the mail server refuses the message: {redact_emails(str(refused))}"
                ) from refused
            _count(message, "retried")
            raise
        except aiosmtplib.SMTPNotSupported as refused:
            _count(message, "refused")
            raise invalid_data(
                f"the mail server cannot take the message: {redact_emails(str(refused))}"
            ) from refused
        except Exception:
            _count(message, "retried")
            raise
        _count(message, "sent")

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
                _beat(SENT)
                await asyncio.sleep(delay)
        await asyncio.to_thread(self._mark_sent, row_id)

    def _mark_failed(self, row_id: int, reason: str) -> None:
        """The notification is refused for good: the outbox says so, with the server's words,
        for the request's pages. Should the store not take it, Temporal's status of the
        request still says it."""
        try:
            _mark(self.commerce, row_id, failed_at=datetime.now(UTC), failure=reason[:FAILURE_MAX])
        except (SQLAlchemyError, ApplicationError) as err:
            activity.logger.warning("could not record email %s as failed: %s", row_id, err)

    def _mark_sent(self, row_id: int) -> None:
        _mark(self.commerce, row_id, sent_at=datetime.now(UTC))

    def onboarding_message(
        self, input: SendEmailInput, email: RenderedEmail, message_id: str
    ) -> Mail:
        request = input.request
        headers = {"X-Onboarding-Id": input.onboarding_id, "X-Onboarding-Event": input.kind.event}
        return self._mime(
            request.contact_name, request.email, request.locale, email, message_id, headers
        )

    def _mime(
        self,
        name: str,
        address: str,
        locale: str,
        email: RenderedEmail,
        message_id: str,
        headers: dict[str, str],
    ) -> Mail:
        """The message as the standard library's `EmailMessage` with the SMTP policy
        would write it, less its cost: the same headers in the same order, the same two
        parts, each header and part as a mail reader decodes it.

        Raises `invalid_data` when a header cannot be written (an address SMTP cannot
        carry, a line break): inside the claim, so nothing is claimed, nothing retried.
        """
        try:
            lines = [
                self._from,
                f"To: {_address(name, address)}\r\n",
                _header("Subject", email.subject),
                f"Date: {mail_date(datetime.now(UTC))}\r\n",
                _ours("Message-ID", message_id),
                *(_ours(header, value) for header, value in headers.items()),
            ]
        except ValueError as err:
            raise invalid_data(f"the email cannot be written: {redact_emails(str(err))}") from err
        text, html = _part("plain", email.text), _part("html", email.html)
        boundary = _boundary(text, html)
        lines += [
            "MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n',
            _ours("Content-Language", locale),
            "\r\n",
        ]
        data = b"".join(
            (
                "".join(lines).encode("ascii"),
                # Each delimiter takes the line break before it: a part's own last one
                # stays its content's.
                f"--{boundary}\r\n".encode(),
                text,
                f"\r\n--{boundary}\r\n".encode(),
                html,
                f"\r\n--{boundary}--\r\n".encode(),
            )
        )
        return Mail(self._sender, address, data, event=headers["X-Onboarding-Event"])


# An encoded word carries at most 75 characters (RFC 2047): 45 bytes make 60 in base64.
_WORD_BYTES = 45
# Where a header line should end (RFC 5322), and the longest line a 7bit part may have,
# as the standard library judges them.
_LINE = 78
# Characters a display name cannot carry outside quotes (RFC 5322 `specials`).
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')


def _plain(value: str) -> bool:
    """Text a header may carry as it is: printable ASCII that reads as no encoded word."""
    if "\r" in value or "\n" in value:
        raise ValueError("Header values may not contain linefeed or carriage return characters")
    return value.isascii() and value.isprintable() and "=?" not in value


def _encoded(value: str) -> str:
    """`value` as RFC 2047 encoded words (UTF-8, base64), folded between words; each word
    ends on a whole character, so each decodes alone."""
    words, word = [], b""
    for char in value:
        encoded = char.encode()
        if len(word) + len(encoded) > _WORD_BYTES:
            words.append(word)
            word = b""
        word += encoded
    words.append(word)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode()}?=" for w in words)


def _header(name: str, value: str) -> str:
    """A header of text someone typed: as it is when it can be, else encoded."""
    if _plain(value) and len(name) + 2 + len(value) <= _LINE:
        return f"{name}: {value}\r\n"
    return f"{name}: {_encoded(value)}\r\n"


def _ours(name: str, value: str) -> str:
    """A header the product writes (an id, a Message-ID, a language): never encoded, a
    reader matches it as it is."""
    if not _plain(value):
        raise ValueError(f"the {name} header cannot carry {value!r}")
    return f"{name}: {value}\r\n"


def _address(name: str, address: str) -> str:
    """`name <address>`: the name quoted or encoded as it needs, the address as it is."""
    local, _, domain = address.rpartition("@")
    for part, words in ((local, "local-part"), (domain, "domain")):
        if not part.isascii():
            raise ValueError(f"{words} contains non-ASCII characters")
    if not local or not _plain(address) or " " in address or "<" in address or ">" in address:
        raise ValueError("the address is not one an email header can carry")
    if not name:
        return address
    if not _plain(name):
        return f"{_encoded(name)} <{address}>"
    if _SPECIALS.search(name):
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>'
    return f"{name} <{address}>"


def _part(subtype: str, content: str) -> bytes:
    """A text part in UTF-8: 7bit when it is short-lined ASCII, else quoted-printable
    (which any server takes, 8BITMIME or not)."""
    lines = content.encode().splitlines()
    if all(len(line) <= _LINE for line in lines) and content.isascii():
        encoding, body = "7bit", b"\r\n".join(lines)
    else:
        encoding = "quoted-printable"
        # Text mode keeps each line break a line break (and encodes a space before it).
        body = binascii.b2a_qp(b"\n".join(lines), istext=True).replace(b"\n", b"\r\n")
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return head.encode() + body + b"\r\n"


def _boundary(*parts: bytes) -> str:
    while True:
        boundary = f"==============={secrets.token_hex(12)}=="
        if not any(boundary.encode() in part for part in parts):
            return boundary


def _count(message: Mail, outcome: str) -> None:
    """`b2b_emails` on the worker's metrics: each attempt at a send, by kind and outcome."""
    activity.metric_meter().create_counter(
        "b2b_emails", "Attempts to send an email, by kind and outcome (sent, retried, refused)"
    ).add(1, {"kind": message.event, "outcome": outcome})


@dataclass
class _Claimed:
    """An outbox row claimed for sending, and its message (None when it is already out)."""

    row_id: int
    already_sent: bool
    message: Mail | None = None


OUTBOX = EmailMessage.__table__  # type: ignore[attr-defined]
# Executed with the columns they set as parameters.
_OUTBOX_ROW = hot(update(OUTBOX).where(OUTBOX.c.id == bindparam("row")))
_UNSENT_ROW = hot(_OUTBOX_ROW.where(OUTBOX.c.sent_at.is_(None)))


def _claim(
    session: Session,
    row: dict[str, Any],
    email: RenderedEmail | None,
    key: tuple[str, ...],
    resent_by: str | None = None,
) -> _Claimed:
    """The notification's outbox row, one more attempt counted on it: inserted (one
    statement) when this is the first, else read back and, unless it is sent, given
    this attempt's subject (and who resent it)."""
    connection = Sql(session.connection())
    subject = email.subject if email is not None else ""
    new = connection.execute(
        insert_ignoring(connection, OUTBOX, "id"),
        {**row, "subject": subject, "created_at": datetime.now(UTC), "attempts": 1},
    ).scalar()
    if new is not None:
        return _Claimed(new, already_sent=False)
    found = connection.execute(by_key(OUTBOX, key, "id", "sent_at"), row).one()
    changes: dict[str, Any] = {"attempts": OUTBOX.c.attempts + 1}
    if found.sent_at is None:
        if email is not None:
            changes["subject"] = subject
        if resent_by is not None:
            changes.update(resent_at=datetime.now(UTC), resent_by=resent_by)
            changes.update(failed_at=None, failure=None)
    connection.execute(update(OUTBOX).where(OUTBOX.c.id == found.id).values(changes))
    return _Claimed(found.id, already_sent=found.sent_at is not None)


def _entitle(session: Session, row_id: int, subject: str) -> None:
    """The subject of an email written once its row was claimed (it carries a new link)."""
    Sql(session.connection()).execute(_OUTBOX_ROW, {"row": row_id, "subject": subject})


def _mark(commerce: Engine, row_id: int, **outcome: Any) -> None:
    """Record an unsent email's outcome: sent, or refused for good."""
    write_sql(
        commerce,
        lambda connection: connection.execute(_UNSENT_ROW, {"row": row_id, **outcome}),
    )


def _beat(*details: str) -> None:
    """Heartbeat, unless this is an email's first attempt (a local activity, which has no
    heartbeat: a failed one goes on as a regular activity, workflows/emails.py)."""
    if not activity.info().is_local:
        activity.heartbeat(*details)


@asynccontextmanager
async def _keeping_alive(progress: list[str]) -> AsyncIterator[None]:
    """Heartbeat `progress` every few seconds while the body runs (never, if it is quick)."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(KEEP_ALIVE_EVERY)
            _beat(*progress)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()

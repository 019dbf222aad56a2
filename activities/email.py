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
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib
from babel.dates import format_datetime
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from opentelemetry import trace
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import smtp
from activities.errors import invalid_data, missing_record, write
from activities.partners import ensure_administrator
from links import staff_page_path, status_url
from logs import redact_emails
from models.activity_io import SendEmailInput, TeamReminderInput
from models.commerce import FAILURE_MAX, Customer, EmailMessage, PartnerUser, Prospect
from models.lifecycle import STAGE_WORDS, STAGES, TEAM_NAMES, ReasonCode, Role, whose_move
from models.partners import AccessLinkInput, LinkIssued, LinkPurpose, PartnerUserState
from models.requests import STORED, OnboardingRequest
from models.status import EmailKind
from models.workflow_io import ResendNotificationInput
from settings import PROJECT_DIR, Settings
from stores.accounts import issue_link, utc
from stores.engine import get_or_create
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
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
    return f"<{event}.{key}@{domain}>"


def _event(kind: str) -> str:
    """The `X-Onboarding-Event` header value of an email kind."""
    return kind.replace("_", "-")


class EmailActivities:
    """Sends each onboarding notification once and leaves one `email_message` row for it."""

    def __init__(self, commerce: Engine, settings: Settings, renderer: EmailRenderer) -> None:
        self.commerce = commerce
        self.settings = settings
        self.renderer = renderer

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

        def claim(session: Session, fresh: bool) -> _Claimed:
            row = _outbox(
                session,
                lambda: EmailMessage(
                    onboarding_id=input.onboarding_id,
                    kind=input.kind.value,
                    period=input.period,
                    recipient=request.email,
                    subject="",
                    locale=request.locale,
                    message_id=message_id,
                    created_at=datetime.now(UTC),
                ),
                onboarding_id=input.onboarding_id,
                kind=input.kind.value,
                period=input.period,
            )
            if resent_by is not None and row.sent_at is None:
                row.resent_at, row.resent_by = datetime.now(UTC), resent_by
                row.failed_at = row.failure = None
            token, may_apply_from = None, input.may_apply_from
            if input.kind is EmailKind.PROSPECT_APPROVED:
                token = self._activation_token(session, input, fresh and row.sent_at is None)
            if input.kind is EmailKind.PROSPECT_REJECTED:
                may_apply_from = self._may_apply_again_from(session, input.onboarding_id)
            email = self.renderer.render(input, token, may_apply_from)
            row.subject = email.subject
            return _Claimed(row, self.onboarding_message(input, email, message_id))

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

        def claim(session: Session, fresh: bool) -> _Claimed:
            row = _outbox(
                session,
                lambda: EmailMessage(
                    onboarding_id=input.onboarding_id,
                    kind=kind.value,
                    period=period,
                    recipient=address,
                    subject="",
                    locale="en",
                    message_id=message_id,
                    created_at=datetime.now(UTC),
                ),
                onboarding_id=input.onboarding_id,
                kind=kind.value,
                period=period,
            )
            email = self.renderer.render_team_reminder(input, team)
            row.subject = email.subject
            headers = {"X-Onboarding-Id": input.onboarding_id, "X-Onboarding-Event": kind.event}
            return _Claimed(
                row, self._mime(team.capitalize(), address, "en", email, message_id, headers)
            )

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
                raise ApplicationError(
                    f"partner user {user.id} has been removed",
                    type="PartnerUserRemoved",
                    non_retryable=True,
                )
            assert user.id is not None
            row = _outbox(
                session,
                lambda: EmailMessage(
                    kind=kind,
                    partner_user_id=user.id,
                    recipient=user.email,
                    subject="",
                    locale=user.locale,
                    message_id=message_id,
                    created_at=datetime.now(UTC),
                ),
                message_id=message_id,
            )
            link, token = issue_link(
                session,
                user.id,
                input.purpose,
                input.notification_id,
                self.settings.activation_ttl,
                fresh=fresh and row.sent_at is None,
            )
            expires.append(utc(link.expires_at))
            if token is None:
                return _Claimed(row, None)
            organization = session.get(Customer, user.organization_customer_id)
            email = self.renderer.render_link(
                input.purpose, token, user, organization.name if organization else "", input.actor
            )
            row.subject = email.subject
            headers = {"X-Partner-User-Id": str(user.id), "X-Onboarding-Event": _event(kind)}
            name = f"{user.first_name} {user.last_name}"
            return _Claimed(
                row, self._mime(name, user.email, user.locale, email, message_id, headers)
            )

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

    async def _send(self, message: MimeMessage) -> None:
        span = trace.get_tracer(__name__).start_as_current_span(
            "smtp send",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "server.address": self.settings.smtp_host,
                "server.port": self.settings.smtp_port,
                "b2b.email.kind": str(message["X-Onboarding-Event"]),
            },
        )
        try:
            with span:
                async with smtp.relay(self.settings) as relay:
                    await relay.send_message(message)
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
                activity.heartbeat(SENT)
                await asyncio.sleep(delay)
        await asyncio.to_thread(self._mark_sent, row_id)

    def _mark_failed(self, row_id: int, reason: str) -> None:
        """The notification is refused for good: the outbox says so, with the server's words,
        for the request's pages. Should the store not take it, Temporal's status of the
        request still says it."""

        def work(session: Session) -> None:
            row = session.get(EmailMessage, row_id)
            if row is not None and row.sent_at is None:
                row.failed_at, row.failure = datetime.now(UTC), reason[:FAILURE_MAX]

        try:
            write(self.commerce, work)
        except (SQLAlchemyError, ApplicationError) as err:
            activity.logger.warning("could not record email %s as failed: %s", row_id, err)

    def _mark_sent(self, row_id: int) -> None:
        def work(session: Session) -> None:
            row = session.get(EmailMessage, row_id)
            if row is not None and row.sent_at is None:
                row.sent_at = datetime.now(UTC)

        write(self.commerce, work)

    def onboarding_message(
        self, input: SendEmailInput, email: RenderedEmail, message_id: str
    ) -> MimeMessage:
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
    ) -> MimeMessage:
        message = MimeMessage(policy=SMTP)
        try:
            message["From"] = self.settings.mail_from
            message["To"] = Address(display_name=name, addr_spec=address)
            message["Subject"] = email.subject
            message["Date"] = formatdate(usegmt=True)
            message["Message-ID"] = message_id
            for header, value in headers.items():
                message[header] = value
        except ValueError as err:
            # A header the standard library cannot write (an address SMTP cannot carry)
            # fails the same way on every attempt: raised inside the claim, so nothing
            # is claimed, and nothing retried.
            raise invalid_data(f"the email cannot be written: {redact_emails(str(err))}") from err
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        # After the parts: making the alternative moves Content-* headers into part one.
        message["Content-Language"] = locale
        return message


def _count(message: MimeMessage, outcome: str) -> None:
    """`b2b_emails` on the worker's metrics: each attempt at a send, by kind and outcome."""
    activity.metric_meter().create_counter(
        "b2b_emails", "Attempts to send an email, by kind and outcome (sent, retried, refused)"
    ).add(1, {"kind": str(message["X-Onboarding-Event"]), "outcome": outcome})


class _Claimed:
    """An outbox row claimed for sending, and the message (None when it is already out)."""

    def __init__(self, row: EmailMessage, message: MimeMessage | None) -> None:
        assert row.id is not None
        row.attempts += 1
        self.row_id = row.id
        self.already_sent = row.sent_at is not None
        self.message = message


def _outbox(session: Session, build: Callable[[], EmailMessage], **key: Any) -> EmailMessage:
    return get_or_create(session, EmailMessage, build, **key)


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

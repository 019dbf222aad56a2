"""Emails on the wire: written directly, they mean what the standard library's
`EmailMessage` wrote; one connection to the mail server carries a worker's emails."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, compat32, default
from email.utils import formatdate, unquote
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from activities import smtp
from activities.email import EmailActivities, EmailRenderer, RenderedEmail, message_id_for
from activities.smtp import Mail, Relay
from models.activity_io import SendEmailInput
from models.status import EmailKind
from scripts.mailsink import SpoolHandler, read_spool
from settings import Settings
from tests.conftest import free_port
from tests.scenario import a_request

MAIL_FROM = "Partner Onboarding <no-reply@b2b.test>"
# Any text a template may come to hold (surrogates are no text).
text = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Co", "Cn")
    ),
    max_size=300,
)
typed = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=80,
).filter(str.strip)


def standard_message(
    name: str, address: str, locale: str, email: RenderedEmail, message_id: str, event: str
) -> EmailMessage:
    """The message as the standard library writes it (what the product sent before)."""
    message = EmailMessage(policy=SMTP)
    message["From"] = MAIL_FROM
    message["To"] = Address(display_name=name, addr_spec=address)
    message["Subject"] = email.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    message["X-Onboarding-Id"] = "abc123"
    message["X-Onboarding-Event"] = event
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    message["Content-Language"] = locale
    return message


def meaning(data: bytes) -> dict[str, Any]:
    """What a mail reader takes from a message: its headers decoded, its parts' contents.

    Typed text is decoded as RFC 2047 says (the standard library's own header parser
    drops some spaces from encoded words, such as a no-break space).
    """
    message = message_from_bytes(data, policy=default)
    raw = message_from_bytes(data, policy=compat32)
    # The date is the moment it is written, the boundary any string not in the parts.
    headers: dict[str, Any] = {
        key: str(value) for key, value in message.items() if key not in ("Date", "Content-Type")
    }
    headers["To"] = recipient(raw["To"])
    headers["Subject"] = decoded(raw["Subject"])
    return {
        "headers": list(message.keys()),
        "values": headers,
        "date": message["Date"].datetime is not None,
        "type": message.get_content_type(),
        "parts": [
            (part.get_content_type(), part.get_content_charset(), part.get_content())
            for part in message.iter_parts()
        ],
    }


def decoded(header: str) -> str:
    return str(make_header(decode_header(header)))


def recipient(header: str) -> tuple[str, str]:
    """`name <address>`'s name (a quoted string, or words, encoded or not) and address."""
    phrase, _, address = header.rpartition("<")
    phrase = phrase.strip()
    if phrase.startswith('"'):
        return unquote(phrase), address.rstrip(">")
    return decoded(phrase), address.rstrip(">")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    company=typed,
    first_name=typed,
    last_name=typed,
    subject=typed,
    body=text,
    html=text,
    locale=st.sampled_from(["en", "it"]),
)
def test_the_message_means_what_the_standard_library_wrote(
    company: str, first_name: str, last_name: str, subject: str, body: str, html: str, locale: str
) -> None:
    try:
        request = a_request(company=company, first_name=first_name, last_name=last_name)
    except ValidationError:
        return
    configured = Settings(_env_file=None, mail_from=MAIL_FROM)  # type: ignore[call-arg]
    activities = EmailActivities(None, configured, EmailRenderer("http://b2b.test", b"s"))  # type: ignore[arg-type]
    # Whatever the templates may come to hold: any text, any subject of one line.
    email = RenderedEmail(subject=" ".join(subject.split()) or "-", text=body, html=html)
    input = SendEmailInput(
        onboarding_id="abc123",
        kind=EmailKind.PROSPECT_APPROVED,
        request=request.model_copy(update={"locale": locale}),
    )
    message_id = message_id_for(input.kind, "abc123", MAIL_FROM)

    mail = activities.onboarding_message(input, email, message_id)

    standard = standard_message(
        request.contact_name, request.email, locale, email, message_id, input.kind.event
    )
    ours, theirs = meaning(mail.data), meaning(standard.as_bytes(policy=SMTP))
    # What was typed reads back exactly (the standard library's own mix of plain and
    # encoded words reads back with a space more or less, depending on the reader).
    assert ours["values"].pop("To") == (request.contact_name, request.email)
    assert ours["values"].pop("Subject") == email.subject
    del theirs["values"]["To"], theirs["values"]["Subject"]
    assert ours == theirs
    assert (mail.sender, mail.recipient) == ("no-reply@b2b.test", request.email)
    assert all(len(line) <= 998 for line in mail.data.split(b"\r\n"))


class Peers(SpoolHandler):
    """The sink, noting the connection (the client's address and port) of each message."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.peers: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


def a_mail(number: int) -> Mail:
    data = (
        f"From: {MAIL_FROM}\r\nTo: someone@partner.example\r\nSubject: {number}\r\n"
        f"X-Onboarding-Event: test\r\n\r\nbody {number}\r\n"
    ).encode()
    return Mail("no-reply@b2b.test", "someone@partner.example", data, event="test")


async def test_one_connection_carries_a_workers_emails(tmp_path: Path) -> None:
    handler = Peers(tmp_path)
    sink = Controller(handler, hostname="127.0.0.1", port=free_port())
    sink.start()
    configured = Settings(_env_file=None, smtp_host="127.0.0.1", smtp_port=sink.port)  # type: ignore[call-arg]
    relay = Relay(configured)
    try:
        await asyncio.gather(*(relay.send(a_mail(n)) for n in range(5)))
        await relay.send(a_mail(5))
        await relay.aclose()
    finally:
        sink.stop()
    assert sorted(str(m["Subject"]) for m in read_spool(tmp_path)) == [str(n) for n in range(6)]
    assert len(set(handler.peers)) == 1


async def test_a_connection_the_server_closed_is_made_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every send finds its connection idle long enough to ask NOOP first.
    monkeypatch.setattr(smtp, "CHECK_IDLE_AFTER", 0.0)
    port = free_port()
    first = Controller(Peers(tmp_path), hostname="127.0.0.1", port=port)
    first.start()
    configured = Settings(_env_file=None, smtp_host="127.0.0.1", smtp_port=port)  # type: ignore[call-arg]
    relay = Relay(configured)
    await relay.send(a_mail(1))
    first.stop()  # closes the connection the relay keeps
    second = Controller(Peers(tmp_path), hostname="127.0.0.1", port=port)
    second.start()
    try:
        await relay.send(a_mail(2))
        await relay.aclose()
    finally:
        second.stop()
    assert [str(m["Subject"]) for m in read_spool(tmp_path)] == ["1", "2"]

"""Emails in the requester's language, with everything they typed escaped in HTML and
never turned into a link."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import SMTP

import pytest

from activities.email import EmailActivities, EmailRenderer, message_id_for
from infra.links import status_url
from models.activity_io import SendEmailInput, TeamReminderInput
from models.lifecycle import ReasonCode, Stage
from models.status import EmailKind, RecordIds
from settings import Settings
from tests.scenario import a_request

SCRIPT = "<script>alert(1)</script>"
SITE = "http://b2b.test"
SECRET = b"a-secret-for-the-tests-only-0123456789"
# What a mail client's link detector would pick up in the text part: a scheme, or a host
# with a dot in it.
LINKS = re.compile(r"(?:https?|ftp|mailto)\s*:\S*|\b(?:www\.)?[\w-]+(?:\.[\w-]+)+")
HREF = re.compile(r"""href\s*=\s*["']?([^"'\s>]+)""")
REQUESTER_KINDS = [kind for kind in EmailKind if kind.to_requester]


def render(kind: EmailKind, **overrides: object) -> SendEmailInput:
    return SendEmailInput(onboarding_id="abc123", kind=kind, request=a_request(**overrides))


def test_every_kind_renders_in_both_languages_with_a_single_line_subject() -> None:
    renderer = EmailRenderer(f"{SITE}/", SECRET)
    for kind in REQUESTER_KINDS:
        for locale in ("en", "it"):
            email = renderer.render(render(kind, locale=locale))
            assert email.subject and "\n" not in email.subject
            assert "abc123" in email.text and "abc123" in email.html
            assert f'lang="{locale}"' in email.html


@pytest.mark.parametrize("kind", [EmailKind.REQUEST_RECEIVED, EmailKind.STATUS_LINK_REMINDER])
def test_the_received_email_and_the_reminder_carry_the_private_status_link(
    kind: EmailKind,
) -> None:
    link = status_url(SITE, SECRET, "abc123")
    for locale in ("en", "it"):
        email = EmailRenderer(SITE, SECRET).render(render(kind, locale=locale))
        assert link in email.text.splitlines()
        assert HREF.findall(email.html) == [link]


def test_what_the_requester_typed_is_escaped_in_html_and_kept_in_text() -> None:
    renderer = EmailRenderer(SITE, SECRET)
    input = render(EmailKind.PROSPECT_REJECTED, company=SCRIPT, first_name="<b>Eve</b>")
    email = renderer.render(input.model_copy(update={"reason": '"><img src=x onerror=alert(1)>'}))
    assert SCRIPT not in email.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "<img" not in email.html and "&lt;b&gt;Eve&lt;/b&gt;" in email.html
    assert SCRIPT in email.text


@pytest.mark.parametrize("kind", REQUESTER_KINDS)
@pytest.mark.parametrize("locale", ["en", "it"])
def test_no_address_anyone_typed_becomes_a_link_in_any_email(kind: EmailKind, locale: str) -> None:
    typed = {
        "company": "Visit https://evil.example/login",
        "first_name": "www.evil.example",
        "last_name": "evil.example:8080",
        "website": "https://evil.example/phish?id=1",
    }
    input = render(kind, locale=locale, **typed)
    input = input.model_copy(update={"reason": "See http://evil.example/appeal"})

    email = EmailRenderer(SITE, SECRET).render(input)

    for part in (email.subject, email.text, email.html):
        assert "evil" in part, "what was typed is still shown"
        found = [link for link in LINKS.findall(part) if "evil" in link]
        assert found == [], f"a mail client would link {found}"
    assert all(href.startswith(f"{SITE}/") for href in HREF.findall(email.html))
    # Read as plain text, it is what was typed.
    text = email.text.replace("\u200b", "")
    if kind is EmailKind.REQUEST_RECEIVED:
        assert all(value in text for value in typed.values())


def test_the_message_carries_the_onboarding_headers_and_a_stable_message_id() -> None:
    settings = Settings(_env_file=None, mail_from="Partners <no-reply@b2b.test>")  # type: ignore[call-arg]
    activities = EmailActivities(None, settings, EmailRenderer(settings.b2b_site_url, SECRET))  # type: ignore[arg-type]
    input = render(EmailKind.PROSPECT_APPROVED, company=SCRIPT)
    email = activities.renderer.render(input)
    message_id = message_id_for(input.kind, input.onboarding_id, settings.mail_from)

    mail = activities.onboarding_message(input, email, message_id)

    message = message_from_bytes(mail.data, policy=SMTP)
    assert message_id == "<prospect-approved.abc123@b2b.test>"
    assert message["Message-ID"] == message_id
    assert message["X-Onboarding-Id"] == "abc123"
    assert message["X-Onboarding-Event"] == "prospect-approved"
    header_block = mail.data.split(b"\r\n\r\n", 1)[0]
    for line in header_block.split(b"\r\n"):
        assert line[:1] in (b" ", b"\t") or b":" in line, f"stray header line {line!r}"


def test_a_reminder_has_a_message_id_of_its_own_in_each_hour() -> None:
    ids = {
        message_id_for(EmailKind.STATUS_LINK_REMINDER, "abc123", "x@b2b.test", period)
        for period in ("2026-11-29T14", "2026-11-29T14", "2026-11-29T15")
    }
    assert ids == {
        "<status-link-reminder.abc123.2026-11-29T14@b2b.test>",
        "<status-link-reminder.abc123.2026-11-29T15@b2b.test>",
    }


def test_the_team_reminder_names_the_request_and_links_to_its_page_only() -> None:
    reminder = TeamReminderInput(
        onboarding_id="abc123",
        number=2,
        stage=Stage.AWAITING_APPROVAL,
        stage_since=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        company="Visit https://evil.example <b>now</b>\r\nBcc: x@evil.example",
        records=RecordIds(prospect_id=7),
        expires_at=datetime(2026, 12, 20, 9, 30, tzinfo=UTC),
    )

    email = EmailRenderer(SITE, SECRET).render_team_reminder(reminder, "Commerce team")

    assert "\n" not in email.subject and "\r" not in email.subject
    assert "Commerce team" in email.subject and "2026-11-20 09:30 UTC" in email.subject
    assert HREF.findall(email.html) == [f"{SITE}/commerce/prospects/7"]
    assert f"{SITE}/commerce/prospects/7" in email.text
    assert "&lt;b&gt;now&lt;/b&gt;" in email.html
    assert [link for link in LINKS.findall(email.text) if "evil" in link] == []
    assert "Stage: Awaiting approval, since 2026-11-20 09:30 UTC." in email.text
    assert "2026-12-20 09:30 UTC" in email.text
    # The product's own sentence is printed as written: a zero-width space (which keeps
    # what people typed from turning into a link) never sits before its full stop.
    assert "Waiting for a Commerce admin to approve or reject it.\n" in email.text
    assert "approve or reject it.</p>" in email.html


@pytest.mark.parametrize("locale", ["en", "it"])
def test_an_expired_request_is_told_so_and_that_it_may_apply_again(locale: str) -> None:
    input = render(EmailKind.PROSPECT_REJECTED, locale=locale)
    expired = EmailRenderer(SITE, SECRET).render(
        input.model_copy(update={"reason_code": ReasonCode.EXPIRED})
    )
    declined = EmailRenderer(SITE, SECRET).render(
        input.model_copy(update={"reason_code": ReasonCode.NOT_ELIGIBLE})
    )

    words = {"en": "has expired", "it": "è scaduta"}[locale]
    assert words in expired.text and words in expired.html
    assert words not in declined.text
    assert f"{SITE}/apply" in expired.text
    at_once = {"en": "You may apply again at once", "it": "Può presentarne subito una nuova"}
    assert at_once[locale] in expired.text


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("en", "you may apply again from January 4, 2027, 4:05:00 PM UTC:"),
        ("it", "potrà presentare una nuova richiesta a partire dal 4 gennaio 2027 16:05:00 UTC:"),
    ],
)
def test_a_rejection_says_from_when_the_requester_may_apply_again(locale: str, words: str) -> None:
    input = render(EmailKind.PROSPECT_REJECTED, locale=locale)
    renderer = EmailRenderer(SITE, SECRET)
    declined = renderer.render(input, may_apply_from=datetime(2027, 1, 4, 16, 5, tzinfo=UTC))

    assert words in " ".join(declined.text.split())
    html = re.sub(r"</?a[^>]*>", "", " ".join(declined.html.split()))
    assert words.removesuffix(":") + ".</p>" in html
    # With no cool-down (a setting of 0), at any time.
    anytime = renderer.render(input)
    assert {"en": "at any time", "it": "in qualsiasi momento"}[locale] in anytime.text

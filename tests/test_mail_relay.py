"""A provider's relay, as production mail goes: TLS (STARTTLS or from the first byte), its
certificate checked against a private CA, and a login (AUTH PLAIN or LOGIN).

The relay is aiosmtpd with a certificate the test's own CA signs and an authenticator.
A wrong login or a certificate we do not trust ends the notification `failed`, naming
why, after SMTP_REFUSED_ATTEMPTS attempts; `/readyz` says the same meanwhile.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from temporalio.client import Client

from client.requests import decide
from models.lifecycle import Action
from models.status import OnboardingStatus
from scripts.mailsink import SpoolHandler, read_spool
from settings import Settings
from stores import Stores
from tests.certificates import Authority
from tests.conftest import browse, free_port, web_settings_for
from tests.scenario import finished, submitted
from web.app import create_app
from worker import build_worker

USERNAME, PASSWORD = "relay-user", "relay-password-0123"


@dataclass
class Relay:
    port: int
    spool: Path


@dataclass
class Relays:
    ca_file: Path
    starttls: Relay
    implicit_tls: Relay
    logins: list[str]


def authenticator(logins: list[str]) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USERNAME.encode(),
            PASSWORD.encode(),
        )
        logins.append(f"{mechanism} {'accepted' if ok else 'refused'}")
        # Not handled: aiosmtpd then answers 535 itself.
        return AuthResult(success=ok, handled=False)

    return check


@pytest.fixture(scope="module")
def relays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relays]:
    directory = tmp_path_factory.mktemp("relay")
    ca = Authority(directory)
    issued = ca.issue("relay", ("127.0.0.1", "localhost"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    logins: list[str] = []
    starttls = Relay(free_port(), directory / "starttls")
    implicit = Relay(free_port(), directory / "implicit")
    controllers = [
        # 587-style: plain text until STARTTLS, which it requires before AUTH; PLAIN only.
        Controller(
            SpoolHandler(starttls.spool), hostname="127.0.0.1", port=starttls.port,
            tls_context=context, require_starttls=True, auth_require_tls=True,
            authenticator=authenticator(logins), auth_exclude_mechanism=["LOGIN"],
        ),
        # 465-style: TLS from the first byte (aiosmtpd cannot tell, hence auth_require_tls
        # off); LOGIN only.
        Controller(
            SpoolHandler(implicit.spool), hostname="127.0.0.1", port=implicit.port,
            ssl_context=context, auth_require_tls=False, authenticator=authenticator(logins),
            auth_exclude_mechanism=["PLAIN"],
        ),
    ]  # fmt: skip
    for controller in controllers:
        controller.start()
    yield Relays(ca.cert_file, starttls, implicit, logins)
    for controller in controllers:
        controller.stop()


def relay_settings(settings: Settings, relays: Relays, tls: str, **overrides: Any) -> Settings:
    relay = relays.starttls if tls == "starttls" else relays.implicit_tls
    return settings.model_copy(
        update={
            "smtp_host": "localhost",
            "smtp_port": relay.port,
            "smtp_starttls": tls == "starttls",
            "smtp_tls": tls == "implicit",
            "smtp_username": USERNAME,
            "smtp_password": PASSWORD,
            "smtp_ca_file": relays.ca_file,
            "smtp_refused_attempts": 2,
            **overrides,
        }
    )


async def approve(
    client: Client, settings: Settings, stores: Stores, executor: ThreadPoolExecutor
) -> OnboardingStatus:
    async with build_worker(client, settings, stores, executor):
        status = await submitted(client, settings)
        await decide(client, status.onboarding_id, Action.QUALIFY, actor="rep:mario")
        await decide(client, status.onboarding_id, Action.WON, actor="rep:mario")
        return await finished(client, status)


async def readiness(settings: Settings, client: Client, stores: Stores) -> tuple[int, str]:
    async with browse(create_app(web_settings_for(settings), client=client, stores=stores)) as web:
        answer = await web.get("/readyz")
    return answer.status_code, answer.json()["checks"]["mail_server"]


@pytest.mark.parametrize(("tls", "mechanism"), [("starttls", "PLAIN"), ("implicit", "LOGIN")])
async def test_the_approval_email_goes_through_a_relay_over_tls_with_a_login(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    relays: Relays,
    tls: str,
    mechanism: str,
) -> None:
    relay = relays.starttls if tls == "starttls" else relays.implicit_tls
    configured = relay_settings(settings, relays, tls)

    status = await approve(client, configured, stores, activity_executor)

    assert status.notification is not None and status.notification.state == "sent"
    delivered = [m for m in read_spool(relay.spool) if m["X-Onboarding-Id"] == status.onboarding_id]
    # The received email and the approval, each once.
    assert sorted(m["X-Onboarding-Event"] for m in delivered) == [
        "prospect-approved",
        "request-received",
    ]
    assert f"{mechanism} accepted" in relays.logins
    assert await readiness(configured, client, stores) == (200, "ok")


async def test_a_wrong_password_fails_the_notification_naming_the_refused_login(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    relays: Relays,
) -> None:
    configured = relay_settings(settings, relays, "starttls", smtp_password="not-the-password")

    status = await approve(client, configured, stores, activity_executor)
    ready, mail_server = await readiness(configured, client, stores)

    assert status.stage == "approved"
    assert status.notification is not None and status.notification.state == "failed"
    assert "the mail server refuses our login: 535" in (status.notification.error or "")
    assert (ready, mail_server.startswith("the mail server refuses our login: 535")) == (503, True)


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_a_certificate_we_do_not_trust_fails_the_notification_saying_so(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
    relays: Relays,
    tls: str,
) -> None:
    # Without SMTP_CA_FILE: the system's CAs, which never signed the relay's certificate.
    configured = relay_settings(settings, relays, tls, smtp_ca_file=None)

    status = await approve(client, configured, stores, activity_executor)
    ready, mail_server = await readiness(configured, client, stores)

    assert status.notification is not None and status.notification.state == "failed"
    reason = "the mail server's certificate is not trusted: unable to get local issuer certificate"
    assert status.notification.error == reason
    assert (ready, mail_server) == (503, reason)


def test_tls_from_the_first_byte_and_starttls_are_one_or_the_other() -> None:
    with pytest.raises(ValueError, match="SMTP_TLS and SMTP_STARTTLS"):
        Settings(_env_file=None, smtp_tls=True, smtp_starttls=True)  # type: ignore[call-arg]

"""Real services for the tests: a Temporal dev server from the venv's binary, an SMTP
server (aiosmtpd), SQLite stores in files, and a worker per test on its own task queue.

The session's services are each process's own: under pytest-xdist (`make test`) every
worker process starts its own dev server, SMTP server and stores, on free ports and in
its own temporary directory; PostgreSQL databases and Redis keys are named per test.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx
import hypothesis
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.converter import data_converter
from client.deployment import make_current_if_none
from models import search_attributes
from models.status import EmailKind
from scripts import temporal_dev
from scripts.mailsink import SpoolHandler, read_spool
from settings import Settings
from stores import Stores
from stores.engine import make_engine
from web.app import create_app
from worker import ACTIVITY_THREADS, build_worker

VENV_BIN = Path(sys.executable).parent
# The worker processes tests start leave the default ports to a running `make dev`; a test
# that reads a worker's metrics or health gives it ports of its own.
os.environ.update(WORKER_METRICS_ADDRESS="", WORKER_HEALTH_ADDRESS="")
# The tests' own payload encryption keys (never `var/`'s), for them and the processes they
# start: the first encrypts, the second is an older key still read.
TEST_PAYLOAD_KEYS = (
    "test-2:dGVzdHMtb25seS1wYXlsb2FkLWtleS1udW1iZXItMiE=,"
    "test-1:dGVzdHMtb25seS1wYXlsb2FkLWtleS1udW1iZXItMSE="
)
os.environ["PAYLOAD_ENCRYPTION_KEYS"] = TEST_PAYLOAD_KEYS
# CI runs the same examples every time (`HYPOTHESIS_PROFILE=ci`); a developer's runs explore.
hypothesis.settings.register_profile("ci", derandomize=True)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
# A namespace no request is started in: how Temporal looks once its retention has passed.
FORGETFUL_NAMESPACE = "forgetful"
TEST_SECRET = "a-secret-for-the-tests-only-0123456789"
T = TypeVar("T")
# How long a test waits for what runs beside it (a workflow's step, an email, a process
# starting): far past what that takes on a busy 2-core machine, so that only a fault
# runs it out. Waiting ends as soon as the thing is there.
PATIENCE = 60.0


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = ...,
    what: str = ...,
    every: float = ...,
) -> T: ...
@overload
async def eventually(
    check: Callable[[], T | None], timeout: float = ..., what: str = ..., every: float = ...
) -> T: ...
async def eventually(
    check: Callable[[], object], timeout: float = PATIENCE, what: str = "", every: float = 0.05
) -> object:
    """`check()`'s first answer that holds (not None, false or empty, and no
    AssertionError), asked again every `every` s; after `timeout` s the last failure.

    As sdk-python's `assert_eventually`: a check may assert, and its last message says
    what was still missing; or `what` names what never came.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = check()
            if inspect.isawaitable(answer):
                answer = await answer
            if answer:
                return answer
            failure = AssertionError(
                f"{what or 'the check'}: not within {timeout:.0f} s (last answered {answer!r})"
            )
        except AssertionError as err:
            failure = err
        if time.monotonic() > deadline:
            raise failure
        await asyncio.sleep(every)


async def answering(url: str, process: subprocess.Popen[Any]) -> httpx.Response:
    """`url`'s first answer, once the process started for it listens."""
    async with httpx.AsyncClient() as http:

        async def answer() -> httpx.Response:
            if process.poll() is not None:
                said = process.stderr.read() if process.stderr else ""
                pytest.fail(f"the process serving {url} has stopped: {said}")
            try:
                return await http.get(url)
            except httpx.TransportError as err:
                raise AssertionError(f"{url} does not answer: {err!r}") from err

        return await eventually(answer)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MailSink:
    host: str
    port: int
    spool: Path

    def messages(
        self, onboarding_id: str | None = None, kind: EmailKind | None = None
    ) -> list[EmailMessage]:
        return [
            message
            for message in read_spool(self.spool)
            if (onboarding_id is None or message["X-Onboarding-Id"] == onboarding_id)
            and (kind is None or message["X-Onboarding-Event"] == kind.event)
        ]

    async def arrived(self, onboarding_id: str, kind: EmailKind) -> list[EmailMessage]:
        """The request's messages of `kind`, once there is one: emails go out beside the process."""

        def found() -> list[EmailMessage]:
            messages = self.messages(onboarding_id, kind)
            assert messages, f"no {kind.event} email for {onboarding_id}"
            return messages

        return await eventually(found)


@pytest.fixture(scope="session")
async def temporal_env(
    base_settings: Settings, session_stores: Stores
) -> AsyncIterator[WorkflowEnvironment]:
    # Encrypted, the requests' data keys kept in the tests' Commerce store, read through
    # an engine of the client's own, as a web process's or the command line's: SQLite's
    # engine is one connection, which the in-process workers' activities would hold while
    # a test's submit waits to read the email's open request (10 s, then "cannot be read").
    commerce = make_engine(base_settings.commerce_database_url)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(VENV_BIN / "temporal"),
        search_attributes=search_attributes.ALL,
        data_converter=data_converter(base_settings, commerce),
        dev_server_log_level="error",
        dev_server_extra_args=["--namespace", FORGETFUL_NAMESPACE, *temporal_dev.TUNING],
    )
    yield env
    await env.shutdown()
    commerce.dispose()


@pytest.fixture(scope="session")
async def client(
    temporal_env: WorkflowEnvironment,
    base_settings: Settings,
    session_stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> Client:
    """The tests' client, once this build is the deployment's current version: every
    test's worker is a worker of it, each on a task queue of its own, which a current
    version takes in as it polls (deployment.py)."""
    first = base_settings.model_copy(update={"onboarding_task_queue": "tests-first-worker"})
    async with build_worker(temporal_env.client, first, session_stores, activity_executor):
        await make_current_if_none(temporal_env.client, first)
    return temporal_env.client


@pytest.fixture(scope="session")
def mail_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailSink]:
    spool = tmp_path_factory.mktemp("mail")
    port = free_port()
    controller = Controller(SpoolHandler(spool), hostname="127.0.0.1", port=port)
    controller.start()
    yield MailSink("127.0.0.1", port, spool)
    controller.stop()


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory, mail_sink: MailSink) -> Settings:
    data = tmp_path_factory.mktemp("stores")
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        sales_database_url=f"sqlite:///{data / 'sales.db'}",
        commerce_database_url=f"sqlite:///{data / 'commerce.db'}",
        smtp_host=mail_sink.host,
        smtp_port=mail_sink.port,
        mail_from="B2B Partner Onboarding <no-reply@b2b.test>",
        b2b_site_url="http://b2b.test",
        # The worker signs the status links it emails as the web app does: same secret.
        web_secret_key=SecretStr(TEST_SECRET),
    )


@pytest.fixture(scope="session")
def session_stores(base_settings: Settings) -> Iterator[Stores]:
    stores = Stores.from_settings(base_settings)
    stores.migrate()
    yield stores
    stores.dispose()


@pytest.fixture(scope="session")
def stores(session_stores: Stores) -> Stores:
    """The SQLite stores (a test module may name another `stores`; the client's data keys
    stay in these)."""
    return session_stores


@pytest.fixture(scope="session")
def activity_executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="test-activity") as executor:
        yield executor


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Sales integration on, and a task queue of this test's own."""
    return base_settings.model_copy(
        update={"onboarding_task_queue": f"test-{uuid.uuid4().hex[:12]}"}
    )


@pytest.fixture
def settings_integration_off(base_settings: Settings) -> Settings:
    """Commerce configured without the Sales integration, on a task queue of its own."""
    return base_settings.model_copy(
        update={
            "sales_integration_enabled": False,
            "onboarding_task_queue": f"test-off-{uuid.uuid4().hex[:12]}",
        }
    )


@pytest.fixture
async def worker(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> AsyncIterator[None]:
    async with build_worker(client, settings, stores, activity_executor):
        yield


@pytest.fixture
async def worker_integration_off(
    client: Client,
    settings_integration_off: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> AsyncIterator[None]:
    async with build_worker(client, settings_integration_off, stores, activity_executor):
        yield


POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# The local Redis, where two app instances share their rate limits.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextmanager
def postgres_databases(*purposes: str) -> Iterator[list[str]]:
    """New databases on the local PostgreSQL server, dropped afterwards: their URLs."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    names = [f"onboarding_test_{uuid.uuid4().hex[:8]}_{purpose}" for purpose in purposes]
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    base = make_url(POSTGRES_ADMIN_URL)
    try:
        yield [base.set(database=name).render_as_string(hide_password=False) for name in names]
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_stores() -> Iterator[Stores]:
    """Both stores on the local PostgreSQL server, each in a database of its own."""
    with postgres_databases("sales", "commerce") as (sales, commerce):
        stores = Stores(sales=make_engine(sales), commerce=make_engine(commerce))
        stores.migrate()
        yield stores
        stores.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_stores(request: pytest.FixtureRequest, stores: Stores) -> Stores:
    """Each store backend the product supports: embedded SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return stores
    return request.getfixturevalue("postgres_stores")


# --- the web app ----------------------------------------------------------------------

REP = ("mario", "sales_rep", "rep-token-for-tests")
ADMIN = ("anna", "commerce_admin", "admin-token-for-tests")


def bearer(user: tuple[str, str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user[2]}"}


def web_settings_for(settings: Settings, **overrides: object) -> Settings:
    """The test's settings with the test users and a generous rate limit."""
    return settings.model_copy(
        update={
            "api_tokens": SecretStr(",".join(":".join(user) for user in (REP, ADMIN))),
            "submit_rate_limit": "1000/minute",
            **overrides,
        }
    )


def browse(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client of the app, in-process, as a caller at `address` would be."""
    transport = httpx.ASGITransport(app=app, client=(address, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://b2b.test")


@pytest.fixture
def web_settings(settings: Settings) -> Settings:
    return web_settings_for(settings)


@pytest.fixture
async def web(
    web_settings: Settings, client: Client, stores: Stores, worker: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The web app over the test's worker, called in-process through httpx."""
    async with browse(create_app(web_settings, client=client, stores=stores)) as http:
        yield http


@pytest.fixture
async def web_integration_off(
    settings_integration_off: Settings, client: Client, stores: Stores, worker_integration_off: None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(web_settings_for(settings_integration_off), client=client, stores=stores)
    async with browse(app) as http:
        yield http


@pytest.fixture
async def site(
    web_settings: Settings, client: Client, stores: Stores, worker: None
) -> AsyncIterator[str]:
    """The web app served over HTTP on a port of its own, in the test's event loop."""
    port = free_port()
    app = create_app(web_settings, client=client, stores=stores)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await serving


@pytest.fixture
def stoppable_worker(
    client: Client, settings: Settings, stores: Stores, activity_executor: ThreadPoolExecutor
) -> Callable[[], Worker]:
    """The test's worker, to run for a while and then stop (`async with stoppable_worker():`)."""
    return lambda: build_worker(client, settings, stores, activity_executor)


@pytest.fixture
def short_accept_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Submissions and decisions wait 2 s, not 10, for a worker to take them up."""
    monkeypatch.setattr("client.connection.ACCEPT_WAIT", timedelta(seconds=2))


async def until_confirmed(send: Callable[[], Awaitable[T]], pending: Callable[[T], bool]) -> T:
    """Send again, as a careful caller does, while the answer is "not yet confirmed".

    A worker just started may take longer than the wait to take the Update up.
    """

    async def confirmed() -> T:
        answer = await send()
        assert not pending(answer), f"still not confirmed: {answer}"
        return answer

    return await eventually(confirmed, every=0.5)

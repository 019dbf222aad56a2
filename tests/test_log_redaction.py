"""No secret that travels in a path reaches the log: the status link's token, and the
partner's activation, invitation and password-reset tokens."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from infra.links import status_path, status_token
from infra.logs import RedactingFormatter
from settings import PROJECT_DIR, Settings
from stores import Stores
from stores.engine import make_engine
from tests.conftest import (
    TEST_SECRET,
    answering,
    eventually,
    free_port,
    postgres_databases,
    web_settings_for,
)
from web.app import create_app
from web.redaction import REDACTED, SECRET_PATHS, RedactSecrets, redact

ONBOARDING_ID = "0123456789abcdef"
TOKEN = status_token(TEST_SECRET.encode(), ONBOARDING_ID)
REQUEST = f"/requests/{ONBOARDING_ID}"
# A request for each path a secret travels in, and what the log may show of it.
VISITS = {
    # Not a secret path: a search in All prospects by the requester's email.
    "/commerce/prospects?q=giulia.rossi%40contoso.example": "/commerce/prospects?q=[email]",
    f"{REQUEST}/{TOKEN}/submitted": f"{REQUEST}/{REDACTED}/submitted",
    f"{REQUEST}/{TOKEN}?lang=it": f"{REQUEST}/{REDACTED}?lang=it",
    "/activate/activation-secret-0001": f"/activate/{REDACTED}",
    "/links/fresh-link-secret-0002/fresh": f"/links/{REDACTED}/fresh",
    "/password/reset/reset-secret-0003": f"/password/reset/{REDACTED}",
}
SECRETS = (
    TOKEN,
    "activation-secret-0001",
    "invitation-secret-0002",
    "reset-secret-0003",
    "giulia.rossi",
)


def test_every_secret_path_has_a_visit_here() -> None:
    visited = {path.split("/")[1] for path in VISITS if not path.startswith("/commerce")}
    assert visited == {template.split("/")[1] for template in SECRET_PATHS}


def test_redaction_keeps_the_shape_and_leaves_other_paths_alone() -> None:
    line = f'127.0.0.1:5000 - "GET {status_path(TEST_SECRET.encode(), ONBOARDING_ID)} HTTP/1.1" 200'
    assert (
        redact(line) == f'127.0.0.1:5000 - "GET /requests/{ONBOARDING_ID}/{REDACTED} HTTP/1.1" 200'
    )
    for path in ("/api/onboarding-requests/abc/qualify", "/requests", "/commerce/prospects/7"):
        assert redact(path) == path


async def test_python_m_web_logs_each_path_without_its_secret(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "API_TOKENS"}
    env.update(
        WEB_PORT=str(port),
        WEB_SECRET_KEY=TEST_SECRET,
        SALES_DATABASE_URL=f"sqlite:///{tmp_path / 'sales.db'}",
        COMMERCE_DATABASE_URL=f"sqlite:///{tmp_path / 'commerce.db'}",
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "web"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await answering(f"{url}/", process)
        async with httpx.AsyncClient() as http:
            for path in VISITS:
                await http.get(url + path)
    finally:
        process.terminate()
        log, _ = process.communicate(timeout=30)

    for path, shown in VISITS.items():
        assert f'"GET {shown} HTTP/1.1"' in log, f"{path} is not logged as {shown}:\n{log}"
    for secret in SECRETS:
        assert secret not in log


async def test_the_app_logs_paths_without_secrets_under_any_uvicorn(
    settings: Settings, stores: Stores
) -> None:
    port = free_port()
    app = create_app(web_settings_for(settings), stores=stores)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info"))
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    lines: list[str] = []
    capture = logging.Handler()
    capture.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("uvicorn.access").addHandler(capture)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for path in VISITS:
                await http.get(path)
    finally:
        logging.getLogger("uvicorn.access").removeHandler(capture)
        server.should_exit = True
        await serving

    log = "\n".join(lines)
    for shown in VISITS.values():
        assert f"GET {shown} HTTP/1.1" in log, log
    for secret in SECRETS:
        assert secret not in log


def test_the_workers_log_lines_carry_no_email_address_whoever_prints_them() -> None:
    """A mail server's refusal, quoted in an exception the SDK logs with its traceback."""
    formatter = RedactingFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise RuntimeError("550 5.1.1 <giulia.rossi@contoso.example>: Recipient refused")
    except RuntimeError:
        record = logging.LogRecord(
            "temporalio.activity",
            logging.WARNING,
            __file__,
            1,
            "Completing activity as failed (%s)",
            ("to giulia.rossi@contoso.example",),
            sys.exc_info(),
        )

    line = formatter.format(record)

    assert "giulia" not in line and "[email]" in line and "Recipient refused" in line


def test_a_logged_traceback_quotes_no_email() -> None:
    searched = "giulia.rossi@contoso.example"
    try:
        raise ValueError(f"PostgreSQL text fields cannot contain NUL: %\x00{searched}%")
    except ValueError:
        record = logging.LogRecord(
            "web", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    RedactSecrets().filter(record)
    printed = logging.Formatter().format(record)
    assert "ValueError" in printed and "Traceback" in printed
    assert searched not in printed and "giulia" not in printed


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_error_quotes_no_value_of_its_statement(backend: str, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'store.db'}"
        else:
            (url,) = stack.enter_context(postgres_databases("errors"))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        with pytest.raises(DBAPIError) as raised, engine.connect() as connection:
            connection.execute(text("SELECT * FROM nowhere WHERE q = :q"), {"q": "needle-0042"})
    assert "nowhere" in str(raised.value) and "needle-0042" not in str(raised.value)

"""`python -m web` as it is deployed: a real uvicorn on a loopback port of its own.

Slow clients cannot hold connections, and X-Forwarded-For names the client only when
it comes from a configured proxy.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from settings import PROJECT_DIR
from tests.conftest import answering, free_port

HEADERS_WITHIN = 10
SLOW_CLIENTS = 50
# A served process each, and one waits out the header timeout, for how `python -m web`
# starts uvicorn, which rarely changes (the app's own proxy rules are test_pages.py's):
# `make test-faults`.
pytestmark = pytest.mark.slow


@asynccontextmanager
async def served(tmp_path: Path, **env: str) -> AsyncIterator[str]:
    """`python -m web` on a free port, with stores of its own and no Temporal behind it."""
    port = free_port()
    settings = {
        "WEB_PORT": str(port),
        "WEB_SECRET_KEY": "a-secret-for-the-tests-only-0123456789",
        "SALES_DATABASE_URL": f"sqlite:///{tmp_path / 'sales.db'}",
        "COMMERCE_DATABASE_URL": f"sqlite:///{tmp_path / 'commerce.db'}",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        **env,
    }
    inherited = {
        k: v for k, v in os.environ.items() if k not in ("API_TOKENS", "FORWARDED_ALLOW_IPS")
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "web"],
        cwd=PROJECT_DIR,
        env={**inherited, **settings},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    site = f"http://127.0.0.1:{port}"
    try:
        assert (await answering(f"{site}/", process)).status_code == 200
        yield site
    finally:
        process.terminate()
        process.wait(timeout=30)


async def closed_within(seconds: float, reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except (TimeoutError, ConnectionError):
        return False


async def test_clients_that_never_finish_their_headers_are_closed_in_time(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as site:
        port = int(site.rsplit(":", 1)[1])
        connections = [
            await asyncio.open_connection("127.0.0.1", port) for _ in range(SLOW_CLIENTS)
        ]
        for _, writer in connections:
            writer.write(b"GET / HTTP/1.1\r\nHost: b2b.test\r\nX-Slow: ")
            await writer.drain()
        started = time.monotonic()
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{site}/")).status_code == 200
        closed = await asyncio.gather(
            *(closed_within(HEADERS_WITHIN + 10, reader) for reader, _ in connections)
        )
        elapsed = time.monotonic() - started
        for _, writer in connections:
            writer.close()
    assert all(closed), f"{closed.count(False)} of {SLOW_CLIENTS} still open"
    assert elapsed < HEADERS_WITHIN + 10


async def limited(site: str, forwarded_for: Callable[[int], str]) -> list[bool]:
    """Three public submissions, each claiming a client: which were refused as too many.

    No Temporal is behind the app: a submission the limit lets through gets a 503.
    """
    async with httpx.AsyncClient() as http:
        return [
            (
                await http.post(
                    f"{site}/api/onboarding-requests",
                    json={},
                    headers={"X-Forwarded-For": forwarded_for(n)},
                )
            ).status_code
            == 429
            for n in range(3)
        ]


async def test_x_forwarded_for_is_ignored_unless_its_sender_is_a_trusted_proxy(
    tmp_path: Path,
) -> None:
    two = {"SUBMIT_RATE_LIMIT": "2/minute"}
    async with served(tmp_path, **two) as site:
        assert await limited(site, lambda n: f"198.51.100.{n}") == [False, False, True]
    async with served(tmp_path, TRUSTED_PROXIES="127.0.0.1", **two) as site:
        assert await limited(site, lambda n: f"198.51.100.{n}") == [False, False, False]
        assert await limited(site, lambda n: "198.51.100.9") == [False, False, True]

"""Configuration as an operator meets it: settings that would break the product later are
refused at start in one line (production's unsafe defaults, absurd durations), a store the
command line cannot use is named as what it is, and two workers share a host."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from temporalio.client import Client

from settings import PROJECT_DIR, Settings, describe
from tests.conftest import PATIENCE, TEST_PAYLOAD_KEYS, TEST_SECRET, eventually

PROCESSES = {
    "worker": [sys.executable, "worker.py"],
    "web": [sys.executable, "-m", "web"],
    "cli": [sys.executable, "starter.py", "status", "0c6e3c1c-5a0e-4f43-9c87-4b7d0c0ad1d1"],
}
# What each refuses with: the worker as for its other start-up failures, the others as bad
# input (the command line's exit 2, the web app's).
REFUSED = {"worker": 1, "web": 2, "cli": 2}
PRODUCTION_NEEDS = (
    "PAYLOAD_ENCRYPTION_KEYS",
    "WEB_SECRET_KEY",
    "SALES_DATABASE_URL",
    "COMMERCE_DATABASE_URL",
)


def bare_env(**settings: str) -> dict[str, str]:
    """The environment without any of the product's settings, then these."""
    ours = {name.upper() for name in Settings.model_fields} | {"TEMPORAL_API_KEY"}
    inherited = {key: value for key, value in os.environ.items() if key not in ours}
    return {**inherited, "WORKER_METRICS_ADDRESS": "", "WORKER_HEALTH_ADDRESS": "", **settings}


def start(process: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        PROCESSES[process], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def refused_in_one_line(ran: subprocess.CompletedProcess[str], process: str) -> str:
    assert ran.returncode == REFUSED[process], ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    return lines[0]


@pytest.mark.parametrize("process", PROCESSES)
def test_production_refuses_to_start_without_keys_secret_and_store_urls(process: str) -> None:
    line = refused_in_one_line(start(process, bare_env(ENVIRONMENT="production")), process)

    assert "ENVIRONMENT=production" in line
    for name in PRODUCTION_NEEDS:
        assert name in line


def test_production_names_only_what_is_missing_and_refuses_a_relative_sqlite_path() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(
            _env_file=None,
            environment="production",
            web_secret_key=TEST_SECRET,
            payload_encryption_keys=TEST_PAYLOAD_KEYS,
            sales_database_url="postgresql+psycopg://b2b@db/sales",
            commerce_database_url="sqlite:///var/commerce.db",
        )

    assert describe(refused.value) == (
        "ENVIRONMENT=production: COMMERCE_DATABASE_URL: a SQLite path must be absolute"
        " (in production no process makes its own keys, secret or store files)"
    )


def test_production_with_everything_named_starts_as_configured() -> None:
    settings = Settings(
        _env_file=None,
        environment="production",
        web_secret_key=TEST_SECRET,
        payload_encryption_keys=TEST_PAYLOAD_KEYS,
        sales_database_url="postgresql+psycopg://b2b@db/sales",
        commerce_database_url="sqlite:////srv/b2b/commerce.db",
    )

    assert settings.commerce_database_url == "sqlite:////srv/b2b/commerce.db"


def test_the_web_app_in_production_has_no_demo_users(tmp_path: Path) -> None:
    env = bare_env(
        ENVIRONMENT="production",
        WEB_SECRET_KEY=TEST_SECRET,
        PAYLOAD_ENCRYPTION_KEYS=TEST_PAYLOAD_KEYS,
        SALES_DATABASE_URL=f"sqlite:///{tmp_path / 'sales.db'}",
        COMMERCE_DATABASE_URL=f"sqlite:///{tmp_path / 'commerce.db'}",
    )

    line = refused_in_one_line(start("web", env), "web")

    assert "API_TOKENS" in line


@pytest.mark.parametrize(
    ("process", "setting", "value"),
    [
        ("worker", "EXPIRE_AFTER", "P99999999D"),
        ("worker", "ACTIVATION_TTL", "P999999999D"),
        ("worker", "EXPIRE_AFTER", "0"),
        ("web", "PERSONAL_DATA_RETENTION", "P99999999D"),
        ("cli", "REMIND_EVERY", "P99999999D"),
    ],
)
def test_an_absurd_duration_is_refused_at_start_in_one_line(
    process: str, setting: str, value: str
) -> None:
    line = refused_in_one_line(start(process, bare_env(**{setting: value})), process)

    assert line.split(":")[1].strip() == setting


def test_a_century_is_the_longest_a_duration_may_be() -> None:
    assert Settings(_env_file=None, reapply_cooldown="P36525D").reapply_cooldown.days == 36525
    with pytest.raises(ValidationError, match="at most 36525 days"):
        Settings(_env_file=None, reapply_cooldown="P36526D")


def cli(client: Client, directory: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """The command line with both stores in `directory`: a folder the worker never used."""
    return subprocess.run(
        [sys.executable, "starter.py", *command],
        cwd=PROJECT_DIR,
        env=bare_env(
            TEMPORAL_ADDRESS=client.service_client.config.target_host,
            PAYLOAD_ENCRYPTION_KEYS=TEST_PAYLOAD_KEYS,
            SALES_DATABASE_URL=f"sqlite:///{directory / 'sales.db'}",
            COMMERCE_DATABASE_URL=f"sqlite:///{directory / 'commerce.db'}",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "command",
    [
        # Asks Commerce the re-apply policy first.
        ("submit", "--company", "Contoso", "--first-name", "Giulia", "--last-name", "Rossi",
         "--email", "giulia@contoso.example"),
        # Encrypts the decision under the request's data key, kept in Commerce.
        ("cancel", "0123456789abcdef"),
    ],
    ids=["submit", "cancel"],
)  # fmt: skip
def test_the_command_line_names_an_empty_store_as_empty(
    client: Client, tmp_path: Path, command: tuple[str, ...]
) -> None:
    ran = cli(client, tmp_path / "elsewhere", *command)

    assert ran.returncode == 5, ran.stderr
    assert "store" in ran.stderr and "is empty: no migration has run on it" in ran.stderr
    assert "does not answer" not in ran.stderr
    assert "Traceback" not in ran.stderr and ran.stderr.count("\n") == 1


def four_free_ports() -> int:
    """The first of four consecutive ports free on loopback: two workers' probe pairs."""
    for _ in range(100):
        first = random.randrange(20000, 60000, 2)
        sockets = [socket.socket() for _ in range(4)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind(("127.0.0.1", first + offset))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no four consecutive free ports")


async def test_a_second_worker_on_the_host_takes_the_next_probe_ports(
    client: Client, tmp_path: Path
) -> None:
    first = four_free_ports()
    env = bare_env(
        TEMPORAL_ADDRESS=client.service_client.config.target_host,
        ONBOARDING_TASK_QUEUE=f"probes-{first}",
        PAYLOAD_ENCRYPTION_KEYS=TEST_PAYLOAD_KEYS,
        WEB_SECRET_KEY=TEST_SECRET,
        SALES_DATABASE_URL=f"sqlite:///{tmp_path / 'sales.db'}",
        COMMERCE_DATABASE_URL=f"sqlite:///{tmp_path / 'commerce.db'}",
        WORKER_METRICS_ADDRESS=f"127.0.0.1:{first}",
        WORKER_HEALTH_ADDRESS=f"127.0.0.1:{first + 1}",
    )
    workers = []
    try:
        async with httpx.AsyncClient() as http:
            for health_port in (first + 1, first + 3):
                worker = subprocess.Popen(
                    [sys.executable, "worker.py"],
                    cwd=PROJECT_DIR,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                workers.append(worker)
                await answered(http, f"http://127.0.0.1:{health_port}/healthz", worker)
            second_metrics = await http.get(f"http://127.0.0.1:{first + 2}/metrics")

        assert second_metrics.status_code == 200
        assert all(worker.poll() is None for worker in workers)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)


async def answered(http: httpx.AsyncClient, url: str, worker: subprocess.Popen[str]) -> None:
    """Wait until `url` answers 200; the worker's one-line reason if it exits first."""

    async def ready() -> bool:
        if worker.poll() is not None:
            pytest.fail(f"the worker exited: {worker.stderr.read()}")  # type: ignore[union-attr]
        try:
            return (await http.get(url)).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ready, 2 * PATIENCE, f"{url} answering 200", every=0.1)

"""`make dev` (scripts/dev.py) on a machine where one of its ports is already taken."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from settings import PROJECT_DIR
from tests.conftest import free_port


def run_dev(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`scripts/dev.py` with stores of the test's own and free ports unless `env` says."""
    return subprocess.run(
        [sys.executable, "scripts/dev.py"],
        cwd=PROJECT_DIR,
        env={
            **os.environ,
            "WEB_PORT": str(free_port()),
            "TEMPORAL_ADDRESS": f"localhost:{free_port()}",
            "TEMPORAL_UI_URL": f"http://localhost:{free_port()}",
            "SMTP_PORT": str(free_port()),
            "SALES_DATABASE_URL": f"sqlite:///{tmp_path / 'sales.db'}",
            "COMMERCE_DATABASE_URL": f"sqlite:///{tmp_path / 'commerce.db'}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_busy_port_is_named_in_one_line_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web_port = taken.getsockname()[1]
        temporal_port = free_port()
        started = time.monotonic()
        ran = run_dev(
            tmp_path, WEB_PORT=str(web_port), TEMPORAL_ADDRESS=f"localhost:{temporal_port}"
        )

    assert ran.returncode == 1
    assert ran.stdout == ""
    (line,) = ran.stderr.splitlines()
    assert line.startswith("dev: port") or line.startswith("dev: ports"), line
    assert f"{web_port} (web app)" in line
    # Nothing started: no store made, no Temporal on its port, and no waiting for one.
    assert not list(tmp_path.iterdir())
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", temporal_port)) != 0
    assert time.monotonic() - started < 30


def test_the_temporal_ui_listens_on_the_port_of_its_url(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ui_port = taken.getsockname()[1]
        ran = run_dev(tmp_path, TEMPORAL_UI_URL=f"http://localhost:{ui_port}")

    assert ran.returncode == 1
    (line,) = ran.stderr.splitlines()
    assert line.startswith(f"dev: port {ui_port} (Temporal UI) is in use"), line

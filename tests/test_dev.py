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


def test_a_busy_port_is_named_in_one_line_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web_port = taken.getsockname()[1]
        temporal_port = free_port()
        started = time.monotonic()
        ran = subprocess.run(
            [sys.executable, "scripts/dev.py"],
            cwd=PROJECT_DIR,
            env={
                **os.environ,
                "WEB_PORT": str(web_port),
                "TEMPORAL_ADDRESS": f"localhost:{temporal_port}",
                "SMTP_PORT": str(free_port()),
                "SALES_DATABASE_URL": f"sqlite:///{tmp_path / 'sales.db'}",
                "COMMERCE_DATABASE_URL": f"sqlite:///{tmp_path / 'commerce.db'}",
            },
            capture_output=True,
            text=True,
            timeout=60,
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

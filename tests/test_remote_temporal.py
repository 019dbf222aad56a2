"""A remote Temporal over TLS: the dev server behind nginx (`grpc_pass`), which demands a
client certificate (mTLS) signed by the test's CA, as a cluster's frontend would, or, on
a second port, an API key, as Temporal Cloud does.

The client and the worker are configured only through Temporal's own environment
(`TEMPORAL_TLS_*`) or a `TEMPORAL_PROFILE` in its TOML file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from settings import PROJECT_DIR
from stores import Stores
from stores.engine import make_engine
from tests.certificates import Authority, Issued
from tests.conftest import MailSink, eventually, free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# A minute of processes (nginx, a worker, the CLI) on a busy machine, for connection
# settings that rarely change: `make test-faults`.
pytestmark = pytest.mark.slow
API_KEY = "an-api-key-for-the-tests-only"


@dataclass
class Frontend:
    address: str
    ca: Path
    client: Issued
    other_ca: Path
    api_key_address: str


def nginx_conf(
    directory: Path, ports: tuple[int, int], upstream: str, server: Issued, ca: Path
) -> str:
    """One frontend that wants a client certificate; one, as Temporal Cloud's, an API key."""
    proxy = f"""
            grpc_pass grpc://{upstream};
            # Workers long-poll for a minute at a time.
            grpc_read_timeout 300s;
            grpc_send_timeout 300s;"""
    return f"""
user root;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    server {{
        listen 127.0.0.1:{ports[0]} ssl http2;
        ssl_certificate {server.cert};
        ssl_certificate_key {server.key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        location / {{{proxy}
        }}
    }}
    server {{
        listen 127.0.0.1:{ports[1]} ssl http2;
        ssl_certificate {server.cert};
        ssl_certificate_key {server.key};
        location / {{
            if ($http_authorization != "Bearer {API_KEY}") {{
                return 401;
            }}{proxy}
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
async def frontend(
    tmp_path_factory: pytest.TempPathFactory, client: Client
) -> AsyncIterator[Frontend]:
    if not os.access(NGINX, os.X_OK):
        pytest.fail("nginx is not installed (apt-get install nginx; .ci/run does it)")
    directory = tmp_path_factory.mktemp("nginx")
    ca = Authority(directory)
    server = ca.issue("frontend", ("localhost", "127.0.0.1"))
    port, api_key_port = free_port(), free_port()
    conf = directory / "nginx.conf"
    upstream = client.service_client.config.target_host
    conf.write_text(nginx_conf(directory, (port, api_key_port), upstream, server, ca.cert_file))
    process = subprocess.Popen(
        [NGINX, "-p", str(directory), "-c", str(conf), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
        text=True,
    )

    def listening() -> bool:
        assert process.poll() is None, f"nginx stopped: {process.communicate()[1]}"
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        await eventually(listening)
    except AssertionError:
        process.kill()
        raise
    yield Frontend(
        f"localhost:{port}",
        ca.cert_file,
        ca.issue("worker", client=True),
        Authority(directory, "other-ca").cert_file,
        f"localhost:{api_key_port}",
    )
    process.terminate()
    process.wait(timeout=30)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "starter.py", *args],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def tls_env(frontend: Frontend, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": frontend.address,
        "TEMPORAL_TLS": "true",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(frontend.ca),
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(frontend.client.cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(frontend.client.key),
        **overrides,
    }


async def test_a_whole_onboarding_runs_through_the_tls_frontend(
    frontend: Frontend, tmp_path: Path, mail_sink: MailSink
) -> None:
    untouched = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    common = {
        **untouched,
        "ONBOARDING_TASK_QUEUE": f"tls-{uuid.uuid4().hex[:8]}",
        "SALES_DATABASE_URL": f"sqlite:///{tmp_path / 'sales.db'}",
        "COMMERCE_DATABASE_URL": f"sqlite:///{tmp_path / 'commerce.db'}",
        "SMTP_HOST": mail_sink.host,
        "SMTP_PORT": str(mail_sink.port),
    }
    # The CLI through a profile in Temporal's TOML file, the worker through its variables.
    profile = tmp_path / "temporal.toml"
    profile.write_text(
        f"""
[profile.remote]
address = "{frontend.address}"
namespace = "default"

[profile.remote.tls]
server_ca_cert_path = "{frontend.ca}"
client_cert_path = "{frontend.client.cert}"
client_key_path = "{frontend.client.key}"
"""
    )
    by_profile = {**common, "TEMPORAL_CONFIG_FILE": str(profile), "TEMPORAL_PROFILE": "remote"}
    # Migrated before the CLI submits (the worker does it as it starts, maybe later than
    # the first submission): Commerce keeps the requests' data keys.
    stores = Stores(
        sales=make_engine(common["SALES_DATABASE_URL"]),
        commerce=make_engine(common["COMMERCE_DATABASE_URL"]),
    )
    stores.migrate()
    stores.dispose()
    worker = subprocess.Popen(
        [sys.executable, "worker.py"],
        cwd=PROJECT_DIR,
        env={**tls_env(frontend), **common},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        email = f"tls.{uuid.uuid4().hex[:8]}@remote.example"
        submitted = cli(
            "submit", "--company", "Remote Srl", "--first-name", "Rita", "--last-name", "Neri",
            "--email", email, env=by_profile,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        onboarding_id = json.loads(submitted.stdout)["onboarding_id"]
        for action in ("qualify", "won"):
            decided = cli(action, onboarding_id, env=by_profile)
            assert decided.returncode == 0, decided.stderr

        def approval_sent() -> dict[str, Any]:
            status = json.loads(cli("status", onboarding_id, env=by_profile).stdout)
            assert (status.get("notification") or {}).get("state") == "sent", status
            return dict(status)

        status = await eventually(approval_sent, every=0.5)
    finally:
        worker.terminate()
        _, worker_log = worker.communicate(timeout=30)

    assert worker.returncode == 0, worker_log
    assert (status["stage"], status["notification"]["state"]) == ("approved", "sent")
    # The received email and the approval, each once.
    assert len(mail_sink.messages(onboarding_id)) == 2


def test_a_wrong_ca_or_no_client_certificate_is_exit_5_in_one_clear_line(
    frontend: Frontend,
) -> None:
    wrong_ca = cli(
        "status", "0123456789abcdef",
        env=tls_env(frontend, TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(frontend.other_ca)),
    )  # fmt: skip
    without_certificate = tls_env(frontend)
    del without_certificate["TEMPORAL_TLS_CLIENT_CERT_PATH"]
    del without_certificate["TEMPORAL_TLS_CLIENT_KEY_PATH"]
    no_certificate = cli("status", "0123456789abcdef", env=without_certificate)

    for refused, names in (
        (wrong_ca, "TEMPORAL_TLS_SERVER_CA_CERT_PATH"),
        (no_certificate, "TEMPORAL_TLS_CLIENT_CERT_PATH"),
    ):
        assert refused.returncode == 5, refused.stderr
        (line,) = refused.stderr.splitlines()
        assert line.startswith(f"starter.py: Temporal at {frontend.address}, namespace 'default': ")
        assert names in line


def test_an_api_key_is_enough_where_the_frontend_wants_one_and_a_wrong_one_is_exit_5(
    frontend: Frontend,
) -> None:
    untouched = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    env = {
        **untouched,
        "TEMPORAL_ADDRESS": frontend.api_key_address,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(frontend.ca),
    }
    # Reaching Temporal: it answers that there is no such request.
    known = cli("status", "0123456789abcdef", env={**env, "TEMPORAL_API_KEY": API_KEY})
    wrong = cli("status", "0123456789abcdef", env={**env, "TEMPORAL_API_KEY": "not-the-key"})

    assert known.returncode == 4, known.stderr
    assert wrong.returncode == 5, wrong.stderr
    (line,) = wrong.stderr.splitlines()
    assert line == (
        f"starter.py: Temporal at {frontend.api_key_address}, namespace 'default': "
        "it refuses our credentials (HTTP 401): check TEMPORAL_API_KEY"
    )

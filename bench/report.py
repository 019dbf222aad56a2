"""A run's results as the issue's targets, a Markdown summary and a latency chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench import profile as py_spy

# The targets (issue 22, item 6; the latencies are the benchmark issue's), per store
# backend: the product's rate ÷ the naive ceiling's; ÷ the lean shape doing the product's
# I/O; the product's I/O alone, CPU ms per won onboarding.
RATIO_TARGET = {"sqlite": 1.2, "postgresql": 1.0}
LEAN_IO_RATIO = 0.8
IO_MS_TARGET = {"sqlite": 12.0}
WON_TO_EMAIL_P99_MS = 300.0
LEAD_VISIBLE_P99_MS = 250.0
UNLOADED_WON_TO_EMAIL_P50_MS = 100.0
WORKER_RSS_MB = 300.0
DECIDE_RATIO = 0.8
# Dual-write (issue 25, item 10): the rate the sync sustains, and the lag from a commit in
# one store to the change applied in the other at half that rate.
SYNC_PER_SECOND = 50.0
SYNC_LAG_P99_MS = 2000.0
# The lag counts as measured at half the sustained rate when the driver offered that much,
# within this share.
SYNC_OFFERED_SHARE = 0.9

MEASURES = {
    "submit": "API submit response (`client.submit`)",
    "lead_visible": "submit → lead visible in Sales",
    "won_to_email": "`won` sent → approval email accepted by the SMTP sink",
}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: a value that was measured, never an interpolation."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 1),
        "p95": round(percentile(values, 95), 1),
        "p99": round(percentile(values, 99), 1),
    }


def _target(name: str, value: float | None, goal: str, met: bool) -> dict[str, Any]:
    return {"target": name, "goal": goal, "value": value, "met": met}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue this run measured, with its value and whether it is met."""
    ceiling = results.get("ceiling")
    out = []
    for backend, measured in results["backends"].items():
        if ceiling and measured["throughput"]:
            ratio = (
                min(run["per_second"] for run in measured["throughput"])
                / ceiling["throughput"]["per_second"]
            )
            goal = RATIO_TARGET.get(backend, 1.0)
            out.append(
                _target(
                    f"{backend}: product ÷ naive ceiling (slowest N)",
                    round(ratio, 2),
                    f"≥ {goal}",
                    ratio >= goal,
                )
            )
        lean_io = (measured.get("lean_io") or {}).get("throughput")
        if lean_io and measured["throughput"]:
            ratio = min(run["per_second"] for run in measured["throughput"]) / lean_io["per_second"]
            out.append(
                _target(
                    f"{backend}: product ÷ (lean + product I/O) (slowest N)",
                    round(ratio, 2),
                    f"≥ {LEAN_IO_RATIO}",
                    ratio >= LEAN_IO_RATIO,
                )
            )
        io = measured.get("io")
        if io and backend in IO_MS_TARGET:
            out.append(
                _target(
                    f"{backend}: the product's I/O alone, CPU ms per won onboarding",
                    io["cpu_ms_each"],
                    f"≤ {IO_MS_TARGET[backend]:.0f}",
                    io["cpu_ms_each"] <= IO_MS_TARGET[backend],
                )
            )
        sync = measured.get("sync")
        if sync:
            half = sync["half_per_second"]
            offered = sync["offered_per_second"] >= SYNC_OFFERED_SHARE * half
            out += [
                _target(
                    f"{backend}: dual-write sustained, changes per second",
                    sync["sustained_per_second"],
                    f"≥ {SYNC_PER_SECOND:.0f}",
                    sync["sustained_per_second"] >= SYNC_PER_SECOND,
                ),
                _target(
                    f"{backend}: dual-write commit → applied in the other store, p99 at "
                    "half the sustained rate, ms",
                    sync["lag_ms"]["p99"],
                    f"≤ {SYNC_LAG_P99_MS:.0f} with ≥ {SYNC_OFFERED_SHARE:.0%} of {half}/s offered",
                    sync["lag_ms"]["p99"] <= SYNC_LAG_P99_MS and offered,
                ),
            ]
        half = {k: percentiles(v) for k, v in measured["latency"]["half_load"].items()}
        unloaded = {k: percentiles(v) for k, v in measured["latency"]["unloaded"].items()}
        for load, measure, key, limit in (
            (half, "won_to_email", "p99", WON_TO_EMAIL_P99_MS),
            (half, "lead_visible", "p99", LEAD_VISIBLE_P99_MS),
            (unloaded, "won_to_email", "p50", UNLOADED_WON_TO_EMAIL_P50_MS),
        ):
            value = load[measure].get(key)
            if value is None:
                continue
            where = "at half load" if load is half else "unloaded"
            out.append(
                _target(
                    f"{backend}: {MEASURES[measure]}, {key} {where}, ms",
                    value,
                    f"≤ {limit:.0f}",
                    value <= limit,
                )
            )
        scale = measured.get("scale")
        if scale:
            many = scale["many_open"]
            out.append(
                _target(
                    f"{backend}: worker RSS with {many['open']:,} open, MB",
                    many["worker_rss_mb"],
                    f"< {WORKER_RSS_MB:.0f}",
                    many["worker_rss_mb"] < WORKER_RSS_MB,
                )
            )
            out.append(
                _target(
                    f"{backend}: deciding {many['open']:,} open ÷ deciding "
                    f"{scale['few_open']['open']}",
                    scale["ratio"],
                    f"≥ {DECIDE_RATIO}",
                    scale["ratio"] >= DECIDE_RATIO,
                )
            )
    return out


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """The rates against each other: each backend's slowest product run ÷ the naive
    ceiling and ÷ the lean reference, and lean ÷ naive, the room the engine leaves."""
    naive, lean = results.get("ceiling"), results.get("lean")
    naive_rate = naive["throughput"]["per_second"] if naive else None
    lean_rate = lean["throughput"]["per_second"] if lean else None
    out: dict[str, Any] = {
        "lean_over_naive": round(lean_rate / naive_rate, 2) if lean_rate and naive_rate else None,
        "backends": {},
    }
    for backend, measured in results["backends"].items():
        if not measured["throughput"]:
            continue
        slowest = min(run["per_second"] for run in measured["throughput"])
        goal = RATIO_TARGET.get(backend, 1.0)
        lean_io = (measured.get("lean_io") or {}).get("throughput")
        out["backends"][backend] = {
            "product_over_naive": round(slowest / naive_rate, 2) if naive_rate else None,
            "product_over_lean": round(slowest / lean_rate, 2) if lean_rate else None,
            "product_over_lean_io": round(slowest / lean_io["per_second"], 2) if lean_io else None,
            # What product ÷ lean the naive target takes, on this run's two references.
            "target_over_lean": (
                round(goal * naive_rate / lean_rate, 2) if naive_rate and lean_rate else None
            ),
        }
    return out


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown(results: dict[str, Any], chart_name: str = "latency.png") -> str:
    """The summary the Performance guide (docs/performance.md) quotes."""
    ceiling, lean = results.get("ceiling"), results.get("lean")
    machine = results["machine"]
    profiled = {
        f"{backend}, {name}": summary
        for backend, measured in results["backends"].items()
        for name, summary in measured.get("profiles", {}).items()
    }
    lines = [
        f"# Benchmark: `{results['profile']['name']}` profile"
        + (", product worker under py-spy" if results.get("py_spy") else ""),
        "",
        f"Run {results['started_at']}, {results['duration_s']:.0f} s; {machine['cpus']} CPUs, "
        f"Python {machine['python']}, temporalio {machine['temporalio']}, Temporal CLI "
        f"{machine['temporal_cli']} dev server in memory with "
        f"`{' '.join(results['dev_server_flags'])}`. Failed lifecycles: "
        f"{results['failures']['count']}.",
        "",
        "## Targets",
        "",
        _row("target", "goal", "measured", "met"),
        _row(*("---",) * 4),
    ]
    if profiled:
        lines[3:3] = [
            "",
            "## Where the product worker's CPU went (py-spy)",
            "",
            *py_spy.markdown(profiled),
            "",
            "py-spy pauses the worker for each sample: this run's rates and CPU figures "
            "are under the profiler; compare its shares with another profiled run's, and "
            "take rates from a run without it.",
        ]
        if results["failures"]["count"]:
            lines[3:3] = [
                "",
                f"**Failed lifecycles in this run: {results['failures']['count']}** (first: "
                f"{results['failures']['first'][0]}). Many mean a worker too loaded to answer "
                "in time, whose profile is not that of the product's normal work.",
            ]
    for t in results["targets"]:
        lines.append(_row(t["target"], t["goal"], t["value"], "yes" if t["met"] else "**no**"))
    lines += _ratios_table(results)
    columns = (
        *("N", "per second", "÷ naive", "÷ lean", "server CPU ms each", "worker CPU ms each"),
        *("driver CPU ms each", "server calls each", "worker RSS MB", "others' CPU share"),
    )
    if ceiling:
        naive = ceiling["throughput"]
        lean_run = lean["throughput"] if lean else None
        lines += [
            "",
            "## Throughput: completed onboardings per second, "
            f"{results['profile'].get('concurrency', '?')} in flight",
            "",
            _row("what", *columns),
            _row(*("---",) * 11),
            _throughput_row("naive ceiling, default worker", naive, naive, lean_run),
        ]
        if lean_run:
            lines.append(_throughput_row("lean reference", lean_run, naive, lean_run))
        for backend, measured in results["backends"].items():
            lean_io = (measured.get("lean_io") or {}).get("throughput")
            if lean_io:
                lines.append(
                    _throughput_row(f"lean + product I/O, {backend}", lean_io, naive, lean_run)
                )
            for run in measured["throughput"]:
                lines.append(_throughput_row(f"product, {backend}", run, naive, lean_run))
        lines += _calls_table(results)
    lines += _io_table(results)
    lines += _sync_table(results)
    latency_rows = []
    for backend, measured in results["backends"].items():
        for load, label in (("unloaded", "unloaded"), ("half_load", "half load")):
            if "half_load" in measured and load == "half_load":
                label = f"open loop, {measured['half_load']['offered_per_second']}/s"
            for measure, title in MEASURES.items():
                p = percentiles(measured["latency"][load][measure])
                if p["n"]:
                    latency_rows.append(
                        _row(backend, label, title, p["n"], p["p50"], p["p95"], p["p99"])
                    )
    if latency_rows:
        lines += [
            "",
            "## Latency, ms",
            "",
            _row("store", "load", "measure", "n", "p50", "p95", "p99"),
            _row(*("---",) * 7),
            *latency_rows,
        ]
    scales = [(b, m["scale"]) for b, m in results["backends"].items() if m.get("scale")]
    if scales:
        lines += [
            "",
            "## Scale: requests open and waiting for a rep, then each cancelled",
            "",
            _row(
                "store",
                "open at once",
                "submitted per second",
                "worker RSS MB",
                "server RSS MB",
                "decided per second",
                "÷ few open",
                "worker / server CPU ms per decision",
                "server calls per decision",
                "others' CPU share",
            ),
            _row(*("---",) * 10),
        ]
        for backend, scale in scales:
            for key in ("few_open", "many_open"):
                s = scale[key]
                decide = s["decide"]
                lines.append(
                    _row(
                        backend,
                        f"{s['open']:,}",
                        s["submit"]["per_second"],
                        s["worker_rss_mb"],
                        s["server_rss_mb"],
                        decide["per_second"],
                        scale["ratio"] if key == "many_open" else "1.00",
                        f"{decide.get('worker_cpu_ms_each')} / {decide.get('server_cpu_ms_each')}",
                        round(sum(decide.get("frontend_calls_each", {}).values()), 1),
                        decide["other_cpu_share"],
                    )
                )
    if ceiling:
        lines += [
            "",
            "Naive ceiling, one workflow alone, start → done: "
            f"p50 {ceiling['unloaded_lifecycle_ms'].get('p50')} ms."
            + (
                " Lean reference, one alone, submit → done: "
                f"p50 {lean['unloaded_lifecycle_ms'].get('p50')} ms."
                if lean
                else ""
            ),
        ]
    if latency_rows:
        lines += ["", f"![latency distributions]({chart_name})"]
    return "\n".join([*lines, ""])


def _ratios_table(results: dict[str, Any]) -> list[str]:
    found = results.get("ratios") or ratios(results)
    rows = [
        _row(
            f"{backend}: product ÷ {ref} (slowest N)",
            measured[f"product_over_{ref}"],
            f"{backend}: ≥ {RATIO_TARGET.get(backend, 1.0)} ÷ naive is "
            f"≥ {measured['target_over_lean']} ÷ lean"
            if ref == "lean" and measured.get("target_over_lean") is not None
            else "",
        )
        for backend, measured in found["backends"].items()
        for ref in ("naive", "lean", "lean_io")
        if measured.get(f"product_over_{ref}") is not None
    ]
    if found.get("lean_over_naive") is not None:
        rows.insert(
            0,
            _row(
                "lean reference ÷ naive ceiling",
                found["lean_over_naive"],
                "the room the engine leaves a request of the lean shape",
            ),
        )
    if not rows:
        return []
    return [
        "",
        "## Ratios: completed per second against the references",
        "",
        _row("ratio", "measured", "note"),
        _row(*("---",) * 3),
        *rows,
    ]


def _io_table(results: dict[str, Any]) -> list[str]:
    """The product's I/O alone (bench/io.py): CPU ms per won onboarding, by part."""
    measured = {b: m["io"] for b, m in results["backends"].items() if m.get("io")}
    if not measured:
        return []
    parts = list(next(iter(measured.values()))["cpu_ms_each_by_part"])
    return [
        "",
        "## The product's I/O alone: CPU ms per won onboarding, one at a time, no Temporal",
        "",
        _row("part", *measured),
        _row(*("---",) * (len(measured) + 1)),
        *(
            _row(part, *(io["cpu_ms_each_by_part"][part] for io in measured.values()))
            for part in parts
        ),
        _row("**all**", *(io["cpu_ms_each"] for io in measured.values())),
    ]


def _sync_table(results: dict[str, Any]) -> list[str]:
    """Dual-write (bench/sync.py): the rate it sustains, and its lag at half that rate."""
    measured = {b: m["sync"] for b, m in results["backends"].items() if m.get("sync")}
    if not measured:
        return []
    return [
        "",
        "## Dual-write: changes per second sustained, and the lag at half that rate",
        "",
        "Edits made while the sync is paused, then caught up (the sustained rate); then "
        "edits at half that rate, each change's lag from its commit to its application in "
        "the other store, ms. Offered: what the driver made, per second.",
        "",
        _row(
            *("store", "caught up", "in s", "sustained per second", "half", "offered"),
            *("n", "lag p50", "lag p95", "lag p99", "conflicts", "lost", "applied twice"),
            "others' CPU share",
        ),
        _row(*("---",) * 14),
        *(
            _row(
                backend,
                s["burst"],
                s["caught_up_s"],
                s["sustained_per_second"],
                s["half_per_second"],
                s["offered_per_second"],
                *(s["lag_ms"].get(k) for k in ("n", "p50", "p95", "p99")),
                s["conflicts"],
                s["lost"],
                s["applied_twice"],
                s.get("other_cpu_share", ""),
            )
            for backend, s in measured.items()
        ),
    ]


def budget(results: dict[str, Any]) -> list[str]:
    """Each target against its figure, and which fall short: the run's last words, so a
    change that slows the product shows in one command."""
    short = [t for t in results["targets"] if not t["met"]]
    width = max((len(t["target"]) for t in results["targets"]), default=0)
    return [
        "targets:",
        *(
            f"  {'ok   ' if t['met'] else 'SHORT'} {t['target']:<{width}}  "
            f"{t['value']} (goal {t['goal']})"
            for t in results["targets"]
        ),
        f"{len(short)} of {len(results['targets'])} targets short"
        + (": " + "; ".join(t["target"] for t in short) if short else ""),
    ]


def _calls_table(results: dict[str, Any]) -> list[str]:
    """Frontend calls per completed workflow (naive, lean) or onboarding, by operation."""
    runs = {"naive ceiling": results["ceiling"]["throughput"]}
    if results.get("lean"):
        runs["lean reference"] = results["lean"]["throughput"]
    for backend, measured in results["backends"].items():
        if measured["throughput"]:
            runs[f"product, {backend}"] = measured["throughput"][0]
    operations = sorted(
        {op for run in runs.values() for op in run.get("frontend_calls_each", {})},
        key=lambda op: -max(run.get("frontend_calls_each", {}).get(op, 0) for run in runs.values()),
    )
    if not operations:
        return []
    lines = [
        "",
        "Server calls per completed onboarding (naive, lean: per workflow), by frontend "
        "operation; "
        "persistence calls at the bottom:",
        "",
        _row("operation", *runs),
        _row(*("---",) * (len(runs) + 1)),
    ]
    for op in operations:
        lines.append(
            _row(op, *(run.get("frontend_calls_each", {}).get(op, 0) for run in runs.values()))
        )
    lines.append(
        _row("persistence", *(run.get("persistence_calls_each", "") for run in runs.values()))
    )
    return lines


def _throughput_row(
    what: str, run: dict[str, Any], naive: dict[str, Any], lean: dict[str, Any] | None
) -> str:
    return _row(
        what,
        run["count"],
        run["per_second"],
        f"{run['per_second'] / naive['per_second']:.2f}",
        f"{run['per_second'] / lean['per_second']:.2f}" if lean else "—",
        run["server_cpu_ms_each"],
        run["worker_cpu_ms_each"],
        run.get("driver_cpu_ms_each", ""),
        round(sum(run.get("frontend_calls_each", {}).values()), 1),
        run["worker_rss_mb"],
        run.get("other_cpu_share", ""),
    )


def chart(results: dict[str, Any], path: Path) -> None:
    """Latency distributions (CDFs), one panel per measure, unloaded and at half load."""
    if not any(
        values
        for measured in results["backends"].values()
        for load in measured["latency"].values()
        for values in load.values()
    ):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MEASURES), figsize=(15, 4.5))
    for ax, (measure, title) in zip(axes, MEASURES.items(), strict=True):
        for backend, measured in results["backends"].items():
            for load, style in (("unloaded", ":"), ("half_load", "-")):
                values = sorted(measured["latency"][load][measure])
                if not values:
                    continue
                share = [(i + 1) / len(values) for i in range(len(values))]
                ax.step(
                    values, share, style, where="post", label=f"{backend}, {load.replace('_', ' ')}"
                )
        ax.set_title(title.replace("`", ""), fontsize=10)
        ax.set_xlabel("ms")
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("share of requests at or under")
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """`python -m bench.report RESULTS.json`: write its Markdown and chart again, beside it.

    `python -m bench.report --compare BEFORE.json AFTER.json`: print two py-spy runs'
    shares side by side (say profile-before.json and profile-after.json).
    """
    import json
    import sys

    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(main.__doc__)
        return
    if sys.argv[1] == "--compare":
        before, after = (json.loads(Path(name).read_text()) for name in sys.argv[2:4])
        print("\n".join(py_spy.comparison(before, after)))
        return
    source = Path(sys.argv[1])
    results = json.loads(source.read_text())
    chart_path = source.with_suffix(".png")
    source.with_suffix(".md").write_text(markdown(results, chart_path.name))
    chart(results, chart_path)


if __name__ == "__main__":
    main()

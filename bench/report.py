"""A run's results as the issue's targets, a Markdown summary and a latency chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# The targets, per store backend.
RATIO_TARGET = {"sqlite": 1.5, "postgresql": 1.0}
WON_TO_EMAIL_P99_MS = 300.0
LEAD_VISIBLE_P99_MS = 250.0
UNLOADED_WON_TO_EMAIL_P50_MS = 100.0
WORKER_RSS_MB = 300.0
DECIDE_RATIO = 0.8

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
    """Each target of the issue with the value this run measured and whether it is met."""
    ceiling = results["ceiling"]["throughput"]["per_second"]
    out = []
    for backend, measured in results["backends"].items():
        ratio = min(run["per_second"] for run in measured["throughput"]) / ceiling
        goal = RATIO_TARGET.get(backend, 1.0)
        out.append(
            _target(
                f"{backend}: product ÷ naive ceiling", round(ratio, 2), f"≥ {goal}", ratio >= goal
            )
        )
        half = {k: percentiles(v) for k, v in measured["latency"]["half_load"].items()}
        unloaded = {k: percentiles(v) for k, v in measured["latency"]["unloaded"].items()}
        for measure, key, limit in (
            ("won_to_email", "p99", WON_TO_EMAIL_P99_MS),
            ("lead_visible", "p99", LEAD_VISIBLE_P99_MS),
        ):
            value = half[measure].get(key)
            out.append(
                _target(
                    f"{backend}: {MEASURES[measure]} {key} at half load, ms",
                    value,
                    f"≤ {limit:.0f}",
                    value is not None and value <= limit,
                )
            )
        value = unloaded["won_to_email"].get("p50")
        out.append(
            _target(
                f"{backend}: {MEASURES['won_to_email']} p50 unloaded, ms",
                value,
                f"≤ {UNLOADED_WON_TO_EMAIL_P50_MS:.0f}",
                value is not None and value <= UNLOADED_WON_TO_EMAIL_P50_MS,
            )
        )
        scale = measured.get("scale")
        if scale:
            many = scale["many_open"]
            rss = many["worker_rss_mb"]
            out.append(
                _target(
                    f"{backend}: worker RSS with {many['open']:,} open, MB",
                    rss,
                    f"< {WORKER_RSS_MB:.0f}",
                    rss < WORKER_RSS_MB,
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


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown(results: dict[str, Any]) -> str:
    """The summary the README's Performance section quotes."""
    ceiling = results["ceiling"]
    lines = [
        "# Benchmark results",
        "",
        f"Run {results['started_at']}, {results['duration_s']:.0f} s; "
        f"{results['machine']['cpus']} CPUs, Python {results['machine']['python']}, "
        f"temporalio {results['machine']['temporalio']}, "
        f"Temporal CLI {results['machine']['temporal_cli']} dev server (in memory, "
        f"`{' '.join(results['dev_server_flags'])}`).",
        "",
        "## Targets",
        "",
        _row("target", "goal", "measured", "met"),
        _row("---", "---", "---", "---"),
    ]
    for target in results["targets"]:
        lines.append(
            _row(
                target["target"],
                target["goal"],
                target["value"],
                "yes" if target["met"] else "**no**",
            )
        )
    lines += [
        "",
        "## Throughput (completed onboardings per second)",
        "",
        _row(
            "what",
            "N",
            "per second",
            "÷ ceiling",
            "server CPU ms each",
            "worker CPU ms each",
            "worker RSS MB",
        ),
        _row(*("---",) * 7),
    ]
    naive = ceiling["throughput"]
    lines.append(
        _row(
            "naive ceiling (default worker)",
            naive["count"],
            naive["per_second"],
            "1.00",
            naive["server_cpu_ms_each"],
            naive["worker_cpu_ms_each"],
            naive["worker_rss_mb"],
        )
    )
    for backend, measured in results["backends"].items():
        for run in measured["throughput"]:
            lines.append(
                _row(
                    f"product, {backend}",
                    run["count"],
                    run["per_second"],
                    f"{run['per_second'] / naive['per_second']:.2f}",
                    run["server_cpu_ms_each"],
                    run["worker_cpu_ms_each"],
                    run["worker_rss_mb"],
                )
            )
    lines += [
        "",
        "## Latency, ms",
        "",
        _row("store", "load", "measure", "n", "p50", "p95", "p99"),
        _row(*("---",) * 7),
    ]
    for backend, measured in results["backends"].items():
        for load, label in (
            ("unloaded", "unloaded"),
            ("half_load", f"open loop {measured['half_load']['offered_per_second']}/s"),
        ):
            for measure, title in MEASURES.items():
                p = percentiles(measured["latency"][load][measure])
                lines.append(
                    _row(backend, label, title, p["n"], p.get("p50"), p.get("p95"), p.get("p99"))
                )
    scales = [(b, m["scale"]) for b, m in results["backends"].items() if m.get("scale")]
    if scales:
        lines += [
            "",
            "## Scale: requests open and waiting for a rep, then all decided",
            "",
            _row(
                "store",
                "open",
                "submitted per second",
                "worker RSS MB",
                "server RSS MB",
                "decided per second",
                "÷ few open",
            ),
            _row(*("---",) * 7),
        ]
        for backend, scale in scales:
            for key in ("few_open", "many_open"):
                s = scale[key]
                lines.append(
                    _row(
                        backend,
                        f"{s['open']:,}",
                        s["submit"]["per_second"],
                        s["worker_rss_mb"],
                        s["server_rss_mb"],
                        s["decide"]["per_second"],
                        scale["ratio"] if key == "many_open" else "1.00",
                    )
                )
    lines += [
        "",
        "Naive ceiling, one workflow alone, start → done: "
        f"p50 {ceiling['unloaded_lifecycle_ms'].get('p50')} ms.",
        "",
        "![latency distributions](latency.png)",
        "",
    ]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    """Latency distributions (CDFs), one panel per measure, unloaded and at half load."""
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

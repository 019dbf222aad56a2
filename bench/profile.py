"""Where the product worker's CPU goes: py-spy samples, summarised by library.

`python -m bench.run --py-spy LABEL` records the worker with py-spy during each of the
product's throughput phases (see `record_command`) and summarises each raw profile here:

- **self** share: each sample counts once, for the category of its innermost frame that
  belongs to one (a sample in the standard library counts for the library that called
  it; one with no categorised frame at all is "other"). The self column adds up to 100 %.
- **in stack** share: the samples with any frame of the category on the stack, so a
  sample counts in every category it passes through. "In stack" of the workflow sandbox
  is everything the worker did inside it (the workflow code, the SDK's workflow instance,
  the modules it imported afresh); "self" is the sandbox's own frames.

Samples are taken with `--gil`: only a thread holding the GIL is recorded, so a share is
of the worker's Python CPU (the Rust core's threads are not Python and are not seen).
"""

from __future__ import annotations

import re
import sys
import sysconfig
from collections import Counter
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
# py-spy stops every thread of the worker (about fifty, most of them the activity pool's)
# for each sample. At its default 100 a second that cost the worker 60 % more CPU per
# onboarding on this machine, and timed-out decisions with it; at 50 the samples still
# number thousands per run. `--nonblocking` costs nothing, but lost a quarter of its
# samples to torn reads, and not evenly: the sandbox's share fell from 33 % to 21 %, and
# threads waiting in `select` showed as holding the GIL.
RATE = 50  # samples a second
FLAGS = ("--gil", "--rate", str(RATE), "--format", "raw", "--full-filenames")

# (key, what the table calls it, where its frames are). Paths are as `location` gives
# them: site-packages relative, `stdlib/…`, `ours/…` (this project), or py-spy's own
# name for frames without a file. A frame belongs to the first category it matches.
CATEGORIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "sandbox",
        "workflow sandbox (`temporalio/worker/workflow_sandbox`)",
        ("temporalio/worker/workflow_sandbox/",),
    ),
    (
        "workflow_instance",
        "temporalio workflow instance and activations",
        (
            "temporalio/worker/_workflow_instance.py",
            "temporalio/worker/_workflow.py",
            "temporalio/workflow/",
        ),
    ),
    (
        "converter",
        "temporalio payload conversion (with its calls into pydantic_core), protobuf",
        (
            "temporalio/converter/",
            "temporalio/contrib/pydantic.py",
            "temporalio/worker/_command_aware_visitor.py",
            "temporalio/bridge/_visitor",
            "google/protobuf/",
        ),
    ),
    (
        "temporalio",
        "temporalio, the rest (calls into the Rust core, activity worker, client)",
        ("temporalio/",),
    ),
    ("pydantic", "pydantic, pydantic_core", ("pydantic/", "pydantic_core/")),
    (
        "sqlalchemy",
        "SQLAlchemy, SQLModel, the database drivers",
        (
            "sqlalchemy/",
            "sqlmodel/",
            "stdlib/sqlite3/",
            "psycopg/",
            "psycopg_binary/",
            "psycopg_pool/",
        ),
    ),
    (
        "email",
        "SMTP and email path (`activities/email.py`, `smtp.py`, aiosmtplib, email, jinja2)",
        (
            "ours/activities/email.py",
            "ours/activities/smtp.py",
            "ours/templates/",
            "aiosmtplib/",
            "stdlib/email/",
            "stdlib/smtplib.py",
            "stdlib/ssl.py",
            "jinja2/",
            "markupsafe/",
            "babel/",
        ),
    ),
    (
        "activities",
        "our activities and stores (`activities/`, `stores/`)",
        ("ours/activities/", "ours/stores/"),
    ),
    (
        "workflows",
        "our workflows and models (`workflows/`, `models/`)",
        ("ours/workflows/", "ours/models/"),
    ),
    ("other", "other (the event loop, logging, tracing, the rest)", ()),
)
# Not a category of its own (the module being imported says where): samples taken
# while an import was under way, most of them the sandbox importing a workflow's modules.
IMPORTING = ("<frozen importlib._bootstrap", "stdlib/importlib/")

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_STDLIB = sysconfig.get_paths()["stdlib"].rstrip("/") + "/"


def record_command(py_spy: str, pid: int, output: Path) -> list[str]:
    return [py_spy, "record", "--pid", str(pid), *FLAGS, "--output", str(output)]


def py_spy_binary() -> str:
    """The venv's py-spy (the `bench` extra installs it)."""
    path = Path(sys.executable).parent / "py-spy"
    if not path.exists():
        raise RuntimeError(
            f"{path} is missing: install the bench extra (.venv/bin/pip install -e '.[dev,bench]')"
        )
    return str(path)


def location(filename: str) -> str:
    """A frame's file as the categories name it."""
    if "/site-packages/" in filename:
        return filename.rsplit("/site-packages/", 1)[1]
    if filename.startswith(_STDLIB):
        return "stdlib/" + filename[len(_STDLIB) :]
    project = f"{PROJECT}/"
    if filename.startswith(project):
        return "ours/" + filename[len(project) :]
    return filename


def category(where: str) -> str | None:
    for key, _, prefixes in CATEGORIES:
        if any(where.startswith(prefix) for prefix in prefixes):
            return key
    return None


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function, location) for each frame, outermost first."""
    frames = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame)
        if match is None:  # a thread or process name (`--threads`, `--subprocesses`)
            continue
        frames.append((match["function"], location(match["file"])))
    return frames


def summarise(raw: str, seconds: float | None = None) -> dict[str, Any]:
    """A py-spy raw profile (collapsed stacks: `frame;frame;… count`) by category."""
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    other_files: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    importing = total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if not frames:
            continue
        total += count
        cats = [category(where) for _, where in frames]
        innermost = next((c for c in reversed(cats) if c is not None), "other")
        own[innermost] += count
        for key in set(cats) - {None}:
            inside[str(key)] += count
        if any(where.startswith(IMPORTING) for _, where in frames):
            importing += count
        function, where = frames[-1]
        functions[f"{function} ({where})"] += count
        if innermost == "other":
            other_files[where] += count

    def share(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    summary: dict[str, Any] = {
        "samples": total,
        "flags": list(FLAGS),
        "categories": [
            {
                "key": key,
                "what": what,
                "self_pct": share(own[key]),
                "in_stack_pct": share(inside[key]) if key != "other" else None,
            }
            for key, what, _ in CATEGORIES
        ],
        "importing_pct": share(importing),
        "top_other_files": [
            {"file": where, "pct": share(n)} for where, n in other_files.most_common(6)
        ],
        "top_functions": [
            {"function": name, "pct": share(n)} for name, n in functions.most_common(10)
        ],
    }
    if seconds:
        # With --gil a sample is a tick on which some worker thread held the GIL.
        summary["seconds"] = round(seconds, 1)
        summary["gil_busy_share"] = round(total / (seconds * RATE), 2)
    return summary


def _row(*cells: object) -> str:
    return "| " + " | ".join("" if cell is None else str(cell) for cell in cells) + " |"


def markdown(profiles: dict[str, dict[str, Any]]) -> list[str]:
    """One table of the summaries, a column pair per profile (say `sqlite, N=500`)."""
    if not profiles:
        return []
    names = list(profiles)
    lines = [
        "Share of the product worker's py-spy samples (`py-spy record "
        f"{' '.join(FLAGS)}`, during the throughput phase), %. **Self**: each sample "
        "once, for its innermost categorised frame (a standard-library frame counts for "
        "its caller); **in stack**: any frame of it on the stack.",
        "",
        _row("where", *(f"{name}: {kind}" for name in names for kind in ("self", "in stack"))),
        _row(*("---",) * (1 + 2 * len(names))),
    ]
    for key, what, _ in CATEGORIES:
        cells = []
        for name in names:
            found = {c["key"]: c for c in profiles[name]["categories"]}.get(key)
            cells += [found["self_pct"], found["in_stack_pct"]] if found else ["", ""]
        lines.append(_row(what, *cells))
    lines.append(
        _row(
            "an import under way (`importlib`)",
            *(x for name in names for x in ("", profiles[name]["importing_pct"])),
        )
    )
    lines.append(_row("samples", *(x for name in names for x in (profiles[name]["samples"], ""))))
    if all("gil_busy_share" in p for p in profiles.values()):
        lines.append(
            _row(
                "GIL held, share of sampling ticks",
                *(x for name in names for x in (profiles[name]["gil_busy_share"], "")),
            )
        )
    for name in names:
        profile = profiles[name]
        others = ", ".join(f"`{o['file']}` {o['pct']}" for o in profile["top_other_files"])
        top = "; ".join(f"`{f['function']}` {f['pct']}" for f in profile["top_functions"][:6])
        lines += [
            "",
            f'{name}: in "other": {others or "nothing"}. Busiest functions (self): {top}.'
            + (f" Raw profile: `{profile['raw']}`." if profile.get("raw") else ""),
        ]
    return lines


def comparison(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Before and after, side by side: the first profile of each run's first backend."""

    def first(results: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        for backend, measured in results["backends"].items():
            for name, profile in measured.get("profiles", {}).items():
                return f"{backend}, {name}", profile
        raise ValueError(f"no py-spy profile in the run of {results.get('started_at')}")

    (b_name, b), (a_name, a) = first(before), first(after)
    lines = [
        _row("where", "before: self", "before: in stack", "after: self", "after: in stack"),
        _row(*("---",) * 5),
    ]
    b_cats = {c["key"]: c for c in b["categories"]}
    a_cats = {c["key"]: c for c in a["categories"]}
    for key, what, _ in CATEGORIES:
        bc, ac = b_cats.get(key, {}), a_cats.get(key, {})
        lines.append(
            _row(
                what,
                bc.get("self_pct"),
                bc.get("in_stack_pct"),
                ac.get("self_pct"),
                ac.get("in_stack_pct"),
            )
        )
    lines.append(_row("an import under way", "", b["importing_pct"], "", a["importing_pct"]))
    lines.append(_row("samples", b["samples"], "", a["samples"], ""))
    return [f"Before: {b_name}; after: {a_name}.", "", *lines]

"""The workflows' code is deterministic: what the SDK's sandbox guarded, checked statically.

The worker runs its workflows unsandboxed (`workflows.registry.workflow_runner`,
docs/performance.md says why). What keeps a replay equal to the run it replays is this
check, with the replay of every recorded version's histories (tests/test_replay.py):

- the workflow code may not use the clock, randomness, the environment, files, the
  network, processes or threads, the stores or the ORM, or asyncio's own clock and loop
  (`BANNED`, each with what to use instead). The workflow code is every module under
  `workflows/`, whole, and what of ours it reaches: each function, class or constant it
  imports from another module of ours, and what that one names in turn, followed
  (`activities` excepted: a workflow only names an activity, the SDK runs it outside).
  A module of ours is checked as far as the workflows reach into it: models/ declares
  the stores' tables beside the workflows' inputs, and the inputs are what is checked;
- a workflow module may not import, from a module of ours, a table of the ORM or
  anything of SQLAlchemy's (`test_workflows_import_no_orm_table_or_engine`);
- a run may not change what its module holds (`shared_state_changes`): unsandboxed, a
  workflow module is imported once per worker, not once per run.

The check reads the source (`ast`): it names a banned function whichever way it was
imported (`import time`, `from datetime import datetime`, `import datetime as dt`).
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlmodel

PROJECT = Path(__file__).resolve().parent.parent
WORKFLOWS = PROJECT / "workflows"

# A qualified name, and every name under it, that workflow code may not use: why, and
# what to use instead. Matched at a dot boundary (`time` bans `time.time`, not `timedelta`).
BANNED: dict[str, str] = {
    "datetime.datetime.now": "the clock: workflow.now()",
    "datetime.datetime.utcnow": "the clock: workflow.now()",
    "datetime.datetime.today": "the clock: workflow.now()",
    "datetime.date.today": "the clock: workflow.now().date()",
    "time": "the clock or a real sleep: workflow.now(), workflow.sleep()",
    "asyncio.sleep": "a timer: workflow.sleep(), workflow.wait_condition(timeout=)",
    "asyncio.get_event_loop": "the event loop: the workflow's own, through workflow.*",
    "asyncio.get_running_loop": "the event loop: the workflow's own, through workflow.*",
    "asyncio.new_event_loop": "another event loop",
    "asyncio.run": "another event loop",
    "asyncio.to_thread": "a thread: an activity",
    "asyncio.open_connection": "the network: an activity",
    "asyncio.start_server": "the network: an activity",
    "asyncio.create_subprocess_exec": "a process: an activity",
    "asyncio.create_subprocess_shell": "a process: an activity",
    "random": "randomness: workflow.random()",
    "secrets": "randomness: workflow.random(), workflow.uuid4()",
    "uuid.uuid1": "a random or clock-based id: workflow.uuid4()",
    "uuid.uuid4": "a random id: workflow.uuid4()",
    "os": "the environment, files, processes: settings given as the workflow's input",
    "sys.argv": "the process's arguments",
    "settings": "the environment: settings given as the workflow's input",
    "builtins.open": "a file: an activity",
    "builtins.input": "a terminal",
    "builtins.hash": "a string's hash differs per process (PYTHONHASHSEED)",
    "io": "files: an activity",
    "pathlib": "files: an activity",
    "shutil": "files: an activity",
    "tempfile": "files: an activity",
    "glob": "files: an activity",
    "subprocess": "a process: an activity",
    "multiprocessing": "a process: an activity",
    "threading": "a thread: an activity",
    "concurrent": "a thread or process pool: an activity",
    "socket": "the network: an activity",
    "ssl": "the network: an activity",
    "select": "the network: an activity",
    "selectors": "the network: an activity",
    "http": "the network: an activity",
    "urllib.request": "the network: an activity",
    "smtplib": "email: an activity",
    "aiosmtplib": "email: an activity",
    "httpx": "the network: an activity",
    "requests": "the network: an activity",
    "aiohttp": "the network: an activity",
    "redis": "a store: an activity",
    "dns": "the network: an activity",
    "sqlite3": "a store: an activity",
    "psycopg": "a store: an activity",
    "psycopg_pool": "a store: an activity",
    "stores": "a store: an activity",
    "sqlalchemy": "a store or its ORM: an activity",
    "sqlmodel": "a store or its ORM: an activity",
}
# Builtins that are banned, by the bare name they are called by.
BUILTINS = {name.removeprefix("builtins.") for name in BANNED if name.startswith("builtins.")}
# Imported by workflows only to name activities; the SDK runs them outside the workflow.
NAMED_ONLY = ("activities",)


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    name: str

    def __str__(self) -> str:
        where = self.path.relative_to(PROJECT) if self.path.is_relative_to(PROJECT) else self.path
        return f"{where}:{self.line}: {self.name} ({banned_by(self.name)})"


def banned_by(name: str) -> str | None:
    """Why `name` is banned (its own entry or its nearest banned parent's), else None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        reason = BANNED.get(".".join(parts[:end]))
        if reason is not None:
            return reason
    return None


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[ast.AST, str, str]]:
    """(node, the local name bound, the qualified name it stands for) for every import."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    yield node, alias.asname, alias.name
                else:
                    yield node, alias.name.split(".")[0], alias.name.split(".")[0]
                    # `import a.b` binds `a` but imports `a.b`: checked as imported too.
                    yield node, "", alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            for alias in node.names:
                yield node, alias.asname or alias.name, f"{source}.{alias.name}"


def _dotted(node: ast.expr) -> list[str] | None:
    """`a.b.c` as ['a', 'b', 'c'], or None when it does not start with a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def violations(source: str, path: Path, module: str, is_package: bool = False) -> list[Violation]:
    """Every use of a banned name in one module's source."""
    tree = ast.parse(source, filename=str(path))
    aliases: dict[str, str] = {}
    found: set[Violation] = set()

    def check(node: ast.AST, name: str) -> None:
        if banned_by(name):
            found.add(Violation(path, getattr(node, "lineno", 0), name))

    for node, local, qualified in imports(tree, module, is_package):
        check(node, qualified)
        if local:
            aliases[local] = qualified
    # Names the module binds itself (`input` as an Update's argument is not the builtin).
    bound = {arg.arg for arg in ast.walk(tree) if isinstance(arg, ast.arg)} | {
        name.id
        for name in ast.walk(tree)
        if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store)
    }
    # The longest chain only: `datetime.datetime.now` is one use, not three.
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            inner.add(id(node.value))
            parts = _dotted(node)
            if id(node) not in inner and parts and parts[0] in aliases:
                check(node, ".".join([aliases[parts[0]], *parts[1:]]))
        elif isinstance(node, ast.Name) and id(node) not in inner and node.id in aliases:
            check(node, aliases[node.id])  # `from uuid import uuid4`, then `uuid4()`
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in BUILTINS
            and node.func.id not in aliases.keys() | bound
        ):
            check(node, f"builtins.{node.func.id}")
    return sorted(found, key=lambda v: (str(v.path), v.line, v.name))


def _source_file(module: str, root: Path) -> tuple[Path, bool] | None:
    """A module of ours: its file, and whether it is a package; None if not ours."""
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py", True
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py"), False
    return None


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    # A local name bound by an import → the qualified name it stands for.
    aliases: dict[str, str]
    # A name the module defines at its top level → the statements that define it.
    defs: dict[str, list[ast.stmt]]


def load(module: str, root: Path) -> Module | None:
    """A module of ours, parsed; None if it is not ours (the standard library, a package)."""
    located = _source_file(module, root)
    if located is None:
        return None
    path, is_package = located
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases = {local: qualified for _, local, qualified in imports(tree, module, is_package)}
    aliases.pop("", None)
    defs: dict[str, list[ast.stmt]] = {}
    for statement in tree.body:
        for name in _defined(statement):
            defs.setdefault(name, []).append(statement)
    return Module(module, path, is_package, tree, aliases, defs)


def _defined(statement: ast.stmt) -> list[str]:
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [statement.name]
    targets = (
        statement.targets
        if isinstance(statement, ast.Assign)
        else [statement.target]
        if isinstance(statement, ast.AnnAssign | ast.AugAssign)
        else []
    )
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _names_in(node: ast.AST) -> set[str]:
    """The names a definition uses, its string annotations' too (`from __future__ import
    annotations`: a pydantic field's type, and its validators, are named in a string)."""
    names = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            names.add(child.id)
        elif isinstance(child, ast.Constant) and isinstance(child.value, str):
            try:
                parsed = ast.parse(child.value, mode="eval")
            except SyntaxError:
                continue
            names |= {n.id for n in ast.walk(parsed) if isinstance(n, ast.Name)}
    return names


def workflow_code(root: Path = PROJECT) -> dict[str, tuple[Module, set[str] | None]]:
    """Module name → (the module, the names of it the workflow code reaches; None: all).

    Every module under `workflows/` whole; from there, each name imported from a module of
    ours, and each name its definition uses, transitively (`NAMED_ONLY` not followed)."""
    modules: dict[str, Module | None] = {}
    reached: dict[str, set[str] | None] = {}

    def get(module: str) -> Module | None:
        if module not in modules:
            ours = module.split(".")[0] not in NAMED_ONLY
            modules[module] = load(module, root) if ours else None
        return modules[module]

    pending: list[tuple[str, str | None]] = [
        (module_name(path, root), None) for path in sorted((root / "workflows").rglob("*.py"))
    ]

    def follow(qualified: str) -> None:
        """A qualified name a reached definition uses: a module of ours, or a name in one."""
        if get(qualified) is not None:
            pending.append((qualified, None))
            return
        parent, _, name = qualified.rpartition(".")
        if parent and get(parent) is not None:
            pending.append((parent, name))

    while pending:
        module_name_, name = pending.pop()
        module = get(module_name_)
        if module is None:
            continue
        seen = reached.get(module_name_, set())
        if seen is None or (name is not None and name in seen):
            continue  # the whole module, or this name, already followed
        # Importing a.b runs a/__init__.py first: its top level, not its every name.
        parts = module_name_.split(".")
        for end in range(1, len(parts)):
            if get(".".join(parts[:end])) is not None:
                reached.setdefault(".".join(parts[:end]), set())
        if name is None:
            reached[module_name_] = None
            statements: list[ast.stmt] = list(module.tree.body)
            for _, _, qualified in imports(module.tree, module_name_, module.is_package):
                follow(qualified)
        else:
            reached.setdefault(module_name_, set())
            names = reached[module_name_]
            assert names is not None
            names.add(name)
            statements = module.defs.get(name, [])
            if not statements and name in module.aliases:
                follow(module.aliases[name])  # imported there from elsewhere
            elif not statements:
                follow(f"{module_name_}.{name}")  # a submodule (`from models import sa`)
        for statement in statements:
            for used in _names_in(statement):
                if used in module.defs and used != name:
                    pending.append((module_name_, used))
                elif used in module.aliases:
                    follow(module.aliases[used])
    return {
        name: (module, reached[name])
        for name, module in modules.items()
        if module is not None and name in reached
    }


def check_tree(root: Path = PROJECT) -> list[Violation]:
    """The violations in what the workflow code reaches: a whole module's, or those
    within the definitions of the names reached."""
    problems: list[Violation] = []
    for module, names in workflow_code(root).values():
        found = violations(module.path.read_text(), module.path, module.name, module.is_package)
        if names is not None:
            spans = [
                (statement.lineno, statement.end_lineno or statement.lineno)
                for name in names
                for statement in module.defs.get(name, [])
            ]
            found = [v for v in found if any(lo <= v.line <= hi for lo, hi in spans)]
        problems += found
    return sorted(problems, key=lambda v: (str(v.path), v.line, v.name))


MUTATORS = {
    "append",
    "extend",
    "insert",
    "pop",
    "popitem",
    "remove",
    "clear",
    "update",
    "setdefault",
    "add",
    "discard",
    "sort",
    "reverse",
}


def shared_state_changes(source: str, path: Path) -> list[str]:
    """Where a function changes what the module holds: a `global` or `nonlocal`, or an
    item, attribute or mutating call on a name bound at module level (a constant, a class).

    Unsandboxed, a workflow module is imported once per worker, not once per run: what one
    run left in it, the next run (or the replay of another request) would find.
    """
    tree = ast.parse(source, filename=str(path))
    module_names = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    } | {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        local = {arg.arg for arg in ast.walk(function.args) if isinstance(arg, ast.arg)} | {
            name.id
            for name in ast.walk(function)
            if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store)
        }
        shared = module_names - local
        for node in ast.walk(function):
            changed: ast.expr | None = None
            if isinstance(node, ast.Global | ast.Nonlocal):
                found.append(f"{path.name}:{node.lineno}: {', '.join(node.names)}")
                continue
            if isinstance(node, ast.Subscript | ast.Attribute) and isinstance(
                node.ctx, ast.Store | ast.Del
            ):
                changed = node.value
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in MUTATORS
            ):
                changed = node.func.value
            while isinstance(changed, ast.Attribute | ast.Subscript):
                changed = changed.value
            if isinstance(changed, ast.Name) and changed.id in shared:
                found.append(f"{path.name}:{changed.lineno}: {changed.id}")
    return found


def test_workflow_modules_keep_no_state_between_runs() -> None:
    problems = []
    for path in sorted(WORKFLOWS.rglob("*.py")):
        problems += shared_state_changes(path.read_text(), path)
    assert not problems, "a workflow changes its module's state:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "SEEN: set[str] = set()\ndef run(x: str) -> None:\n    SEEN.add(x)\n",
        "WORDS = {}\nasync def run(x: str) -> None:\n    WORDS[x] = 1\n",
        "class Flow:\n    runs = 0\n    def run(self) -> None:\n        Flow.runs += 1\n",
        "COUNT = 0\ndef run() -> None:\n    global COUNT\n    COUNT = 1\n",
        "OPTIONS = {'a': {}}\ndef run() -> None:\n    OPTIONS['a'].update(b=1)\n",
    ],
)
def test_a_planted_change_of_module_state_is_caught(source: str) -> None:
    assert shared_state_changes(source, WORKFLOWS / "planted.py")


def test_a_run_s_own_state_is_not_module_state() -> None:
    source = (
        "WORDS = {'a': 'b'}\n"
        "class Flow:\n"
        "    def __init__(self) -> None:\n"
        "        self.seen: set[str] = set()\n"
        "    def run(self, x: str) -> str:\n"
        "        self.seen.add(x)\n"
        "        words = dict(WORDS)\n"
        "        words[x] = x\n"
        "        return WORDS[x]\n"
    )
    assert shared_state_changes(source, WORKFLOWS / "fine.py") == []


def test_workflow_code_uses_no_banned_name() -> None:
    code = workflow_code()
    # The check reaches what the workflows run: their own modules, the models they import.
    assert {"workflows.onboarding", "workflows.clock", "models.lifecycle", "models.ids"} <= set(
        code
    )
    assert not any(module.startswith("activities") for module in code)
    problems = check_tree()
    assert not problems, "non-deterministic in workflow code:\n" + "\n".join(map(str, problems))


def test_a_module_of_ours_is_checked_as_far_as_the_workflows_reach() -> None:
    """models/partners reads today's date as it loads (`CURRENCIES`, for an admin's new
    credit limit at the web edge): the partner user's inputs, which the workflows use, are
    checked; the currencies, which they do not reach, are not."""
    _, names = workflow_code()["models.partners"]
    assert names is not None and "PartnerUserInput" in names
    assert {"CURRENCIES", "NewCreditLimit", "CurrencyInUse"}.isdisjoint(names)
    # reached, the date would fail the check
    found = {
        v.name
        for v in violations(
            (PROJECT / "models/partners.py").read_text(),
            PROJECT / "models/partners.py",
            "models.partners",
        )
    }
    assert "datetime.date.today" in found


def is_orm(value: object) -> bool:
    """A table of the ORM (its instances are what a store's session tracks), or anything
    of SQLAlchemy's (an engine, a session, a column, a statement)."""
    if isinstance(value, type) and issubclass(value, sqlmodel.SQLModel):
        return hasattr(value, "__table__")
    module = inspect.getmodule(value)
    return module is not None and module.__name__.split(".")[0] in {"sqlalchemy", "sqlmodel"}


OURS = {"models", "workflows"}


def test_workflows_import_no_orm_table_or_engine() -> None:
    """What a workflow module imports of ours is a value, a function or a pydantic model."""
    problems = []
    for name, (module, _) in sorted(workflow_code().items()):
        if name.split(".")[0] != "workflows":
            continue
        path = module.path
        for node, _, qualified in imports(module.tree, name, module.is_package):
            source, _, name = qualified.rpartition(".")
            if not isinstance(node, ast.ImportFrom) or source.split(".")[0] not in OURS:
                continue
            if is_orm(getattr(importlib.import_module(source), name, None)):
                problems.append(f"{path.relative_to(PROJECT)}:{node.lineno}: {qualified}")
    assert not problems, "ORM in workflow code:\n" + "\n".join(problems)


def test_the_orm_rule_tells_a_table_from_a_workflow_input() -> None:
    from sqlalchemy import create_engine
    from sqlmodel import Session

    from models.requests import OnboardingRequest
    from models.sales import Lead

    assert is_orm(Lead) and is_orm(Session) and is_orm(create_engine)
    assert not is_orm(OnboardingRequest) and not is_orm(None) and not is_orm("text")


PLANTED = [
    ("from datetime import datetime\nx = datetime.now()\n", "datetime.datetime.now"),
    ("import datetime as dt\nx = dt.datetime.utcnow()\n", "datetime.datetime.utcnow"),
    ("from datetime import date\nx = date.today()\n", "datetime.date.today"),
    ("import time\nx = time.time()\n", "time"),
    ("from time import monotonic\n", "time.monotonic"),
    ("import random\nx = random.random()\n", "random"),
    ("import uuid\nx = uuid.uuid4()\n", "uuid.uuid4"),
    ("from uuid import uuid4\n", "uuid.uuid4"),
    ("import os\nx = os.environ['X']\n", "os"),
    ("from os import environ\n", "os.environ"),
    ("import asyncio\nasync def f():\n    await asyncio.sleep(1)\n", "asyncio.sleep"),
    ("x = open('f').read()\n", "builtins.open"),
    ("x = hash('a')\n", "builtins.hash"),
    ("x = input()\n", "builtins.input"),
    ("import threading\n", "threading"),
    ("import httpx\n", "httpx"),
    ("from sqlmodel import Session\n", "sqlmodel.Session"),
    ("from stores import Stores\n", "stores.Stores"),
    ("import sqlalchemy.orm\n", "sqlalchemy.orm"),
]


@pytest.mark.parametrize(("source", "name"), PLANTED, ids=[name for _, name in PLANTED])
def test_a_planted_violation_is_caught(source: str, name: str) -> None:
    found = violations(source, WORKFLOWS / "planted.py", "workflows.planted")
    assert name in {v.name for v in found}, found


def test_deterministic_code_passes() -> None:
    """What workflows use instead, and names that only look alike, are not flagged."""
    source = (
        "import asyncio\n"
        "from datetime import datetime, timedelta\n"
        "from temporalio import workflow\n"
        "async def run(at: datetime) -> None:\n"
        "    now = workflow.now()\n"
        "    await workflow.sleep(timedelta(seconds=1))\n"
        "    task = asyncio.create_task(run(now))\n"
        "    timestamp = at.timestamp()\n"
        "    x = workflow.uuid4(), workflow.random().random()\n"
        "def update(input: str) -> str:\n"
        "    return input.strip()\n"
    )
    assert violations(source, WORKFLOWS / "fine.py", "workflows.fine") == []


def test_a_violation_in_what_a_workflow_reaches_is_caught(tmp_path: Path) -> None:
    """The check follows a workflow's imports into models/, name by name: what the
    workflow uses is checked, what it does not is not; an activity it names is not."""
    for package in ("workflows", "models", "activities"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "workflows" / "flow.py").write_text(
        "from temporalio import workflow\n"
        "with workflow.unsafe.imports_passed_through():\n"
        "    from activities.writes import Writes\n"
        "    from models.ids import Input, stamp\n"
    )
    (tmp_path / "models" / "ids.py").write_text(
        "from __future__ import annotations\n"
        "import uuid\n"
        "from datetime import UTC, datetime\n"
        "from pydantic import BaseModel\n"
        "from models.tables import Row\n"
        "def stamp() -> str:\n"
        "    return _now().isoformat()\n"
        "def _now() -> datetime:\n"
        "    return datetime.now(UTC)\n"
        "class Input(BaseModel):\n"
        "    key: Key\n"
        "Key = Annotated[str, AfterValidator(_fresh)]\n"
        "def _fresh(value: str) -> str:\n"
        "    return value or uuid.uuid4().hex\n"
        "def for_the_web() -> Row:\n"
        "    return Row(at=datetime.now(UTC))\n"
    )
    (tmp_path / "models" / "tables.py").write_text(
        "from sqlmodel import Field, SQLModel\n"
        "class Row(SQLModel, table=True):\n"
        "    id: int = Field(primary_key=True)\n"
    )
    (tmp_path / "activities" / "writes.py").write_text(
        "import time\nclass Writes:\n    def write(self) -> float:\n        return time.time()\n"
    )
    found = check_tree(tmp_path)
    assert [(v.path.relative_to(tmp_path).as_posix(), v.line, v.name) for v in found] == [
        ("models/ids.py", 9, "datetime.datetime.now"),  # stamp → _now
        ("models/ids.py", 14, "uuid.uuid4"),  # Input → Key (in a string) → _fresh
    ]
    code = workflow_code(tmp_path)
    assert set(code) == {"workflows", "workflows.flow", "models", "models.ids"}
    assert code["models.ids"][1] == {"stamp", "_now", "Input", "Key", "_fresh"}

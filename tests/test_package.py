"""The product as an operator installs it: the wheel in a fresh venv, run from elsewhere.

The wheel is built and installed offline: without build isolation, without its
dependencies, which the new venv borrows from the test's own through a `.pth` line (a
plain path, so the checkout's editable install is not seen there).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from client.deployment import release_build_id
from models.status import EmailKind
from settings import PROJECT_DIR
from tests.conftest import MailSink, eventually

NOT_SOURCE = (".*", "var", "build", "test-output", "*.egg-info", "*.mo", "__pycache__")
SETUPTOOLS_WARNINGS = ("SetuptoolsDeprecationWarning", "SetuptoolsWarning", "BuildBackendWarning")
# A wheel built and installed into a venv of its own, for packaging that rarely changes:
# `make test-faults`.
pytestmark = pytest.mark.slow


@dataclass
class Installed:
    bin: Path
    build_log: str

    def run(
        self, *command: str, cwd: Path, env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / command[0]), *command[1:]],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("installed")
    # Built from a copy, as from a clean clone: without the checkout's compiled catalogues,
    # and leaving no build/ behind in it.
    source = root / "source"
    shutil.copytree(PROJECT_DIR, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(root / "dist"), str(source)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (root / "dist").glob("b2b_onboarding-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-deps", str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    target = subprocess.run(
        [str(venv / "bin" / "python"), "-c", where], capture_output=True, text=True, check=True
    ).stdout.strip()
    (Path(target) / "borrowed-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    yield Installed(venv / "bin", built.stdout + built.stderr)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory that is not the checkout, as a service's would be."""
    directory = tmp_path / "service"
    directory.mkdir()
    return directory


def service_env(**settings: str) -> dict[str, str]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "SMTP_", "SALES_", "COMMERCE_", "API_", "WEB_"))
        and key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    return {**inherited, **settings}


def test_the_wheel_builds_without_setuptools_warnings_and_carries_the_catalogues(
    installed: Installed,
) -> None:
    for warning in SETUPTOOLS_WARNINGS:
        assert warning not in installed.build_log
    assert "LC_MESSAGES/messages.mo" in installed.build_log


def test_the_checkout_type_checks_with_a_wheel_build_left_in_it(tmp_path: Path) -> None:
    """The README's `pip wheel` leaves setuptools' build/ in the checkout; `make lint` (mypy,
    with the project's configuration) must not read its copies as duplicate modules."""
    shutil.copy(PROJECT_DIR / "pyproject.toml", tmp_path)
    for module in (tmp_path / "activities", tmp_path / "build" / "lib" / "activities"):
        module.mkdir(parents=True)
        (module / "__init__.py").write_text("KIND = 'copy'\n")

    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "."],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_cli_answers_help_from_any_directory(installed: Installed, elsewhere: Path) -> None:
    helped = installed.run("b2b-onboarding", "--help", cwd=elsewhere, env=service_env())

    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: b2b-onboarding")
    for command in ("submit", "qualify", "won", "status"):
        assert command in helped.stdout


def test_the_installed_web_app_serves_its_pages_with_state_in_the_working_directory(
    installed: Installed, elsewhere: Path
) -> None:
    script = """
import json, web.app, settings
from fastapi.testclient import TestClient
with TestClient(web.app.create_app()) as http:
    paths = ("/?lang=it", "/apply", "/static/style.css", "/favicon.ico")
    pages = {path: http.get(path) for path in paths}
print(json.dumps({
    "module": web.app.__file__,
    "status": {path: page.status_code for path, page in pages.items()},
    "italian": "Presentate la richiesta" in pages["/?lang=it"].text,
}))
"""
    ran = installed.run("python", "-c", script, cwd=elsewhere, env=service_env())

    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout.splitlines()[-1])
    assert not seen["module"].startswith(str(PROJECT_DIR))
    assert set(seen["status"].values()) == {200}
    assert seen["italian"]
    assert {path.name for path in (elsewhere / "var").iterdir()} >= {
        "sales.db",
        "commerce.db",
        "web-secret.key",
    }


async def test_an_onboarding_runs_on_the_installed_worker_and_cli(
    installed: Installed, elsewhere: Path, client: Client, mail_sink: MailSink
) -> None:
    env = service_env(
        TEMPORAL_ADDRESS=client.service_client.config.target_host,
        ONBOARDING_TASK_QUEUE=f"installed-{uuid.uuid4().hex[:8]}",
        SMTP_HOST=mail_sink.host,
        SMTP_PORT=str(mail_sink.port),
        # The tests' build is current on their server, and this is its code: installed
        # without git, it would name itself by its code's digest, a build not yet current.
        WORKER_BUILD_ID=release_build_id(),
    )
    worker = subprocess.Popen(
        [str(installed.bin / "b2b-onboarding-worker")],
        cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert worker.stderr is not None
    started = []
    try:
        # As a service is started, then used: the worker has made the stores (the CLI
        # keeps the requests' data keys in Commerce) once it polls.
        while "worker polling" not in (line := worker.stderr.readline()):
            assert line, "the worker stopped before polling"
            started.append(line)
        submitted = installed.run(
            "b2b-onboarding", "submit", "--company", "Installed Srl", "--first-name", "Ida",
            "--last-name", "Rossi", "--email", f"ida-{uuid.uuid4().hex[:6]}@installed.example",
            "--locale", "it", cwd=elsewhere, env=env,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        onboarding_id = json.loads(submitted.stdout)["onboarding_id"]
        for action in ("qualify", "won"):
            decided = installed.run("b2b-onboarding", action, onboarding_id, cwd=elsewhere, env=env)
            assert decided.returncode == 0, decided.stderr

        def approval_sent() -> dict[str, Any]:
            status = json.loads(
                installed.run(
                    "b2b-onboarding", "status", onboarding_id, cwd=elsewhere, env=env
                ).stdout
            )
            assert status["notification"]["state"] == "sent", status
            return dict(status)

        status = await eventually(approval_sent, every=0.5)
    finally:
        worker.send_signal(signal.SIGINT)
        _, worker_log = worker.communicate(timeout=30)
        worker_log = "".join(started) + worker_log

    assert worker.returncode == 0, worker_log
    assert status["stage"] == "approved"
    assert status["notification"]["state"] == "sent"
    (email,) = mail_sink.messages(onboarding_id, EmailKind.PROSPECT_APPROVED)
    assert email["Content-Language"] == "it"
    assert (elsewhere / "var" / "commerce.db").exists()


def test_the_systemd_units_run_the_installed_commands(installed: Installed) -> None:
    with (PROJECT_DIR / "pyproject.toml").open("rb") as pyproject:
        commands = set(tomllib.load(pyproject)["project"]["scripts"])
    for unit in (PROJECT_DIR / "deploy" / "systemd").glob("*.service"):
        (start,) = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
        command = Path(start.removeprefix("ExecStart=").split()[0]).name
        assert command in commands, unit.name
        assert (installed.bin / command).exists()

"""`make test` and `make test-faults` on a fresh machine: they bring the Debian packages the
tests drive (Chromium, nginx) themselves, and leave a machine that has them alone.

apt-get is a stand-in here that records how it was called: the test installs nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from settings import PROJECT_DIR


@pytest.fixture
def apt_get(tmp_path: Path) -> Path:
    """A PATH directory whose `apt-get` and `sudo` only write their arguments to calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("apt-get", "sudo"):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {tmp_path / "calls.log"}\n')
        stub.chmod(0o755)
    return bin_dir


def system_packages(apt_get: Path, wanted: str) -> list[str]:
    subprocess.run(
        ["make", "--no-print-directory", "system-packages", f"SYSTEM_PACKAGES={wanted}"],
        cwd=PROJECT_DIR,
        env={**os.environ, "PATH": f"{apt_get}:{os.environ['PATH']}"},
        check=True,
        capture_output=True,
        timeout=60,
    )
    log = apt_get.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_what_is_missing_is_installed_with_apt_get(apt_get: Path, tmp_path: Path) -> None:
    present = f"{os.environ.get('SHELL', '/bin/sh')}=present-package"
    missing = f"{tmp_path / 'no-such-binary'}=missing-package"

    calls = system_packages(apt_get, f"{present} {missing}")

    installs = [call for call in calls if " install " in call]
    assert len(installs) == 1
    assert installs[0].endswith("install -y -qq missing-package")
    assert "present-package" not in installs[0]


def test_nothing_is_done_when_everything_is_present(apt_get: Path) -> None:
    assert system_packages(apt_get, "/bin/sh=present-package") == []


@pytest.mark.parametrize("target", ["test", "test-faults"])
def test_the_test_targets_bring_chromium_and_nginx(target: str) -> None:
    planned = subprocess.run(
        ["make", "--no-print-directory", "--dry-run", target],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    assert "apt-get install" in planned
    assert "/usr/bin/chromium=chromium" in planned
    assert "/usr/sbin/nginx=nginx" in planned

"""Headless Chromium (Debian's package) driven from the command line, for page tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# As the machine notes say: without these, Chromium tries the network at every start.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium not installed (Debian package 'chromium'; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(url: str, *extra: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
                                capture_output=True, timeout=120, check=True)
    return result.stdout.decode()


def dump_dom(url: str) -> str:
    """The DOM after the page loaded and ran, as the browser built it."""
    return run(url, "--dump-dom", "--virtual-time-budget=3000")


def screenshot(url: str, path: Path) -> None:
    run(url, f"--screenshot={path}", "--window-size=1280,900", "--hide-scrollbars")

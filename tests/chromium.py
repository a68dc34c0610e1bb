"""Headless Chromium (Debian's package) for page tests: where it is, and the flags it starts with
(tests/cdp.py drives it)."""

from __future__ import annotations

import os
import shutil

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

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import RunningBridge, settings_for_test


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[RunningBridge]:
    running = RunningBridge(settings_for_test(tmp_path))
    yield running
    running.stop()

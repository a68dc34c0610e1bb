"""A million distinct label values: the series cap holds, memory stays bounded, and the series
that existed before keep updating."""

from __future__ import annotations

from pathlib import Path

from benchmarks.loadgen import distinct_series_request
from tests.bridge_process import BridgeProcess
from tests.support import CLAUDE, shifted

DISTINCT = 1_000_000
PER_REQUEST = 10_000
CAP = 20_000
T7_METRICS = (CLAUDE / "t7_write_edit_acceptEdits" / "0014_http_metrics.pb").read_bytes()


def test_a_million_distinct_label_values(tmp_path: Path) -> None:
    bridge = BridgeProcess(tmp_path, tmp_path / "state", extra_toml=(
        f'synchronous = "normal"\nmax_inputs_in_memory = {CAP}\n'
        f"[limits]\nmax_series = {CAP}\nmax_request_bytes = 67108864\nmax_decompressed_bytes = 67108864\n"))
    try:
        assert bridge.post(T7_METRICS) == 200
        existing = bridge.scrape().total("otlp_bridge_series")
        baseline = bridge.rss_bytes()
        for first in range(0, DISTINCT, PER_REQUEST):
            assert bridge.post(distinct_series_request(first, PER_REQUEST), timeout=120) == 200
        scrape = bridge.scrape()
        assert scrape.total("otlp_bridge_series") == CAP
        assert scrape.total("otlp_bridge_rejected_items_total", reason="series_limit") == DISTINCT - (CAP - existing)
        grown = bridge.rss_bytes() - baseline
        # unbounded, a million series and their input state would be well over a gigabyte
        assert grown < 175 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
        assert bridge.post(shifted(T7_METRICS, 10**9)) == 200
        assert bridge.scrape().total("claude_code_token_usage_tokens_total", type="cacheRead") == 2 * 3 * 4567
    finally:
        assert bridge.stop() == 0

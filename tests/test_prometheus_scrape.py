"""A real Prometheus scrapes the bridge; PromQL returns the exact totals."""

from __future__ import annotations

import gzip
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.prometheus_server import Prometheus, binary
from tests.support import CLAUDE, FIXTURES, RunningBridge, replay, settings_for_test


@pytest.fixture
def prometheus(tmp_path: Path, bridge: RunningBridge) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path, [f"127.0.0.1:{bridge.ports.metrics}"])
    yield server
    server.stop()


def test_promql_over_a_real_scrape_returns_exact_totals(bridge: RunningBridge, prometheus: Prometheus) -> None:
    for run in ("t7_write_edit_acceptEdits", "t9_cumulative_sleep", "t3_grpc", "t20_model_haiku"):
        replay(bridge, CLAUDE / run)
    prometheus.wait_for_value('sum(claude_code_token_usage_tokens_total{type="cacheRead"})', 4567 * (3 + 2 + 1 + 1))
    prometheus.wait_for_value("sum(claude_code_session_count_total)", 4)
    prometheus.wait_for_value('sum(claude_code_cost_usage_USD_total{model="claude-haiku-4-5"})', 0.0019022)
    prometheus.wait_for_value('sum(claude_code_lines_of_code_count_total{type="added"})', 6)
    (up,) = prometheus.query('up{job="otlp-bridge"}')
    assert up["value"][1] == "1"
    # resource attributes joinable through target_info, as with the Collector
    joined = prometheus.query(
        'sum by (os_type) (claude_code_session_count_total * on (job, instance) group_left (os_type) target_info)')
    assert joined[0]["metric"]["os_type"] == "linux"


def _promtool_check(text: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([binary("promtool"), "check", "metrics"], input=text.encode(), capture_output=True,
                          timeout=30, check=False)


def test_promtool_finds_claude_code_series_lint_clean(bridge: RunningBridge) -> None:
    for run in ("t7_write_edit_acceptEdits", "t20_model_haiku", "t1_http_protobuf_sayhi", "t10_fail_reject_details"):
        replay(bridge, CLAUDE / run)
    result = _promtool_check(bridge.scrape().text)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_parses_sdk_histograms(bridge: RunningBridge) -> None:
    replay(bridge, FIXTURES / "otel-sdks" / "js-sdk-0.223_proto_cumulative")  # histograms, no descriptions
    result = _promtool_check(bridge.scrape().text)
    # exit 1 would be a parse failure; 3 is lint. The one lint allowed is the client's own unit
    # choice (`ms`), which the Collector's naming rules keep as `_milliseconds` too.
    complaints = [line for line in result.stderr.decode().splitlines() if line]
    assert result.returncode in (0, 3), complaints
    assert all('use base unit "seconds" instead of "milliseconds"' in line for line in complaints), complaints


def test_openmetrics_by_content_negotiation(bridge: RunningBridge) -> None:
    replay(bridge, CLAUDE / "t7_write_edit_acceptEdits")
    replay(bridge, FIXTURES / "otel-sdks" / "js-sdk-0.223_proto_cumulative")
    scrape = bridge.scrape("application/openmetrics-text; version=1.0.0")
    assert scrape.content_type.startswith("application/openmetrics-text")
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    assert families["claude_code_token_usage_tokens"].type == "counter"
    assert families["feas_latency_milliseconds"].type == "histogram"
    tokens = {s.labels["type"]: s.value for s in families["claude_code_token_usage_tokens"].samples
              if s.name.endswith("_total")}  # beside each: `_created`, when the series began
    assert tokens["cacheRead"] == 3 * 4567


@pytest.mark.parametrize("accept", ["text/plain", "application/openmetrics-text; version=1.0.0"])
def test_a_scraper_that_accepts_gzip_gets_the_same_body_compressed(tmp_path: Path, accept: str) -> None:
    now = time.time()  # one clock reading: derived gauges (burn rates) stay put between the scrapes
    bridge = RunningBridge(settings_for_test(tmp_path), clock=lambda: now)
    try:
        _compare_encodings(bridge, accept)
    finally:
        bridge.stop()


def _compare_encodings(bridge: RunningBridge, accept: str) -> None:
    replay(bridge, CLAUDE / "t7_write_edit_acceptEdits")
    replay(bridge, FIXTURES / "otel-sdks" / "js-sdk-0.223_proto_cumulative")

    def get(encoding: str | None) -> tuple[dict[str, str], bytes]:
        headers = {"Accept": accept} | ({"Accept-Encoding": encoding} if encoding is not None else {})
        request = urllib.request.Request(bridge.metrics_url, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:  # urllib never inflates
            return dict(response.headers), response.read()

    plain_headers, body = get(None)
    assert "Content-Encoding" not in plain_headers
    assert int(plain_headers["Content-Length"]) == len(body)
    for encoding in ("gzip", "br, gzip;q=0.5", "*"):
        headers, compressed = get(encoding)
        assert headers["Content-Encoding"] == "gzip"
        assert int(headers["Content-Length"]) == len(compressed) < len(body)
        assert gzip.decompress(compressed) == body  # the members, one stream
    for refused in ("identity", "gzip;q=0", "br"):
        headers, same = get(refused)
        assert "Content-Encoding" not in headers
        assert same == body

"""Real captures in, exact answers out: event series, /summary, /insights, budget gauges.

Expected values are worked out here by hand from what the captures carry: every successful API
request used 123 input, 42 output, 4567 cache-read and 890 cache-write tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from otlp_bridge.derive.insights import SEVERITY_ORDER, usd
from tests.support import CLAUDE, RunningBridge, replay, settings_for_test

RUNS = ("t7_write_edit_acceptEdits", "t10_fail_reject_details", "t12_api_error_400", "t13_api_error_529",
        "t20_model_haiku")
NOW = 1795382900.0  # 25 s after t20's last point: every capture is within the last hour
OPUS_REQUESTS, HAIKU_REQUESTS = 3 + 2, 1
COST = 0.0200862 + 0.0133908 + 0.0019022  # t7, t10, t20 as the metrics carry it
LIMIT = 0.03
# Burn rate: spend since the start of the hour one burn window (1 h) ago, per hour since then.
BURN_SINCE = (NOW - 3600) // 3600 * 3600
BURN = COST / ((NOW - BURN_SINCE) / 3600)  # every capture is within the window


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBridge]:
    settings = settings_for_test(
        tmp_path_factory.mktemp("economics"),
        budgets=[{"name": "monthly", "period": "month", "limit_usd": LIMIT},
                 {"name": "platform-team", "period": "day", "limit_usd": 1.0, "match": {"team_id": "platform"}}],
        economics={"subscription_usd_per_month": 20.0})
    bridge = RunningBridge(settings, clock=lambda: NOW)
    for run in RUNS:
        replay(bridge, CLAUDE / run)
    yield bridge
    bridge.stop()


def test_event_series(fed: RunningBridge) -> None:
    scrape = fed.scrape()
    assert scrape.total("claude_code_api_requests_total", model="claude-opus-5-5") == OPUS_REQUESTS
    assert scrape.total("claude_code_api_requests_total", model="claude-haiku-4-5") == HAIKU_REQUESTS
    assert scrape.total("claude_code_api_errors_total", model="claude-opus-5-5", status_code="400") == 1
    # t13: a final 529 carries no status code, only "Repeated 529 Overloaded errors", after 3 attempts
    assert scrape.total("claude_code_api_errors_total", status_code="529") == 1
    assert scrape.total("claude_code_api_errors_total", status_code="none") == 0
    assert scrape.total("claude_code_api_error_attempts_total", status_code="529") == 3
    assert scrape.total("claude_code_api_error_attempts_total", status_code="400") == 1
    assert scrape.total("claude_code_api_retries_exhausted_total", status_code="529") == 1
    assert scrape.total("claude_code_tool_calls_total", tool_name="Bash", success="false") == 1
    assert scrape.total("claude_code_tool_calls_total", tool_name="Write", success="true") == 1
    assert scrape.total("claude_code_tool_decisions_total", tool_name="Bash", decision="accept", source="config") == 1
    assert scrape.total("claude_code_user_prompts_total") == 5
    assert scrape.total("claude_code_prompt_workflows_total", workflow="other") == 1  # only t10 logs its prompt
    assert scrape.total("claude_code_user_prompt_length_chars_sum") == 38 + 21 + 16 + 19 + 6
    assert scrape.total("claude_code_tool_duration_seconds_sum", tool_name="Bash") == pytest.approx(0.033)
    assert scrape.total("claude_code_api_request_output_tokens_count", model="claude-opus-5-5") == OPUS_REQUESTS
    assert scrape.total("claude_code_api_request_cost_usd_sum", model="claude-haiku-4-5") == 0.0019022
    # resource attributes of t10 (OTEL_RESOURCE_ATTRIBUTES) label its events too
    assert scrape.total("claude_code_tool_calls_total", team_id="platform", department="eng") == 1


def test_logs_replayed_count_once(fed: RunningBridge) -> None:
    before = fed.scrape().total("claude_code_api_requests_total")
    replay(fed, CLAUDE / "t7_write_edit_acceptEdits")
    scrape = fed.scrape()
    assert scrape.total("claude_code_api_requests_total") == before
    assert scrape.total("otlp_bridge_items_total", signal="logs", outcome="duplicate") >= 13


def test_summary(fed: RunningBridge) -> None:
    summary = fed.get_json("/summary")
    reads, writes, inputs, outputs = 4567 * 6, 890 * 6, 123 * 6, 42 * 6
    assert summary["tokens"] == {
        "sent": inputs + reads + writes, "received": outputs, "from_cache": reads, "input": inputs,
        "cache_creation": writes, "cache_hit_ratio": round(reads / (inputs + reads + writes), 10),
    }
    opus_saved = (4567 * 5 * (4 - 0.2) - 890 * 5 * (5 - 4)) / 1e6
    haiku_saved = (4567 * (1 - 0.1) - 890 * (1.25 - 1)) / 1e6
    cost = summary["cost_usd"]
    assert cost["all_time"] == pytest.approx(COST, rel=1e-12)
    assert cost["today"] == pytest.approx(COST, rel=1e-12)
    assert cost["this_month"] == pytest.approx(COST, rel=1e-12)
    assert cost["saved_by_cache"] == pytest.approx(opus_saved + haiku_saved, rel=1e-9)
    assert cost["plan_value_ratio"] == pytest.approx(COST / 20.0, rel=1e-9)
    opus, haiku = summary["models"]
    assert opus["model"] == "claude-opus-5-5"
    assert opus["requests"] == OPUS_REQUESTS
    assert opus["cost_usd"] == pytest.approx(0.0200862 + 0.0133908, rel=1e-12)
    assert opus["cache_savings_usd"] == pytest.approx(opus_saved, rel=1e-9)
    assert haiku["tokens"] == {"input": 123, "output": 42, "cache_read": 4567, "cache_creation": 890}
    tools = {t["tool"]: t for t in summary["tools"]}
    assert tools["Bash"] == {"tool": "Bash", "calls": 1, "failures": 1, "failure_ratio": 1.0,
                             "mean_duration_seconds": 0.033}
    assert summary["api"]["requests"] == 6
    assert summary["api"]["errors"] == 2
    assert summary["api"]["error_ratio"] == 0.25
    assert summary["api"]["retries_exhausted"] == 1
    # every session's last event is within 5 minutes of NOW (t7, the oldest, 198 s before)
    assert summary["activity"] == {"sessions": 5, "active_sessions": 5, "prompts": 5, "lines_added": 6,
                                   "lines_removed": 1, "commits": 0, "pull_requests": 0,
                                   "active_time_seconds": pytest.approx(0.379 + 0.272 + 0.213 + 2.045 + 0.186)}
    assert summary["workflows"] == [{"workflow": "other", "count": 1}]
    assert {row["user_id"][:8] for row in summary["last_seen"]} >= {"84ee8d05"}


def test_budgets_in_summary_and_gauges(fed: RunningBridge) -> None:
    now = datetime.fromtimestamp(NOW, UTC)
    hours_left = (datetime(2026, 12, 1, tzinfo=UTC) - now).total_seconds() / 3600
    burn = BURN
    budgets = {b["name"]: b for b in fed.get_json("/summary")["budgets"]}
    monthly = budgets["monthly"]
    assert monthly["spent_usd"] == pytest.approx(COST, rel=1e-12)
    assert monthly["remaining_usd"] == pytest.approx(LIMIT - COST, rel=1e-9)
    assert monthly["used_ratio"] == pytest.approx(COST / LIMIT, rel=1e-9)
    assert monthly["burn_rate_usd_per_hour"] == pytest.approx(burn, rel=1e-9)
    assert monthly["forecast_usd"] == pytest.approx(COST + burn * hours_left, rel=1e-9)
    assert monthly["exhausted_at"] is None  # already over
    assert monthly["period_start"] == "2026-11-01T00:00:00+00:00"
    team = budgets["platform-team"]  # only t10 ran with team.id=platform
    assert team["spent_usd"] == pytest.approx(0.0133908, rel=1e-12)
    scrape = fed.scrape()
    assert scrape.total("claude_code_budget_spent_usd", budget="platform-team") == pytest.approx(0.0133908)
    assert scrape.total("claude_code_budget_limit_usd", budget="monthly") == LIMIT
    assert scrape.total("claude_code_budget_used_ratio", budget="monthly") == pytest.approx(COST / LIMIT)
    # At this burn the team's day budget would run out days after the day ends: no "runs out at".
    team_burn = 0.0133908 / ((NOW - BURN_SINCE) / 3600)
    assert (1.0 - 0.0133908) / team_burn * 3600 > 86400
    assert team["exhausted_at"] is None
    assert not scrape.series("claude_code_budget_exhausted_timestamp_seconds")


def test_insights(fed: RunningBridge) -> None:
    found = {i["type"]: i for i in fed.get_json("/insights")["insights"]}
    assert set(found) == {"budget_forecast_over_limit", "large_model_small_requests", "high_api_error_rate",
                          "api_retries_exhausted"}
    hours_left = (datetime(2026, 12, 1, tzinfo=UTC) - datetime.fromtimestamp(NOW, UTC)).total_seconds() / 3600
    budget = found["budget_forecast_over_limit"]
    assert budget["severity"] == "critical"
    assert budget["scope"] == {"budget": "monthly"}
    assert budget["potential_savings_usd"] == 0  # an overrun, not a saving: the message names it
    assert f"({usd(COST + BURN * hours_left - LIMIT)} over)" in budget["message"]
    smaller = found["large_model_small_requests"]
    opus_tokens_at = lambda i, o, w, r: (615 * i + 210 * o + 4450 * w + 22835 * r) / 1e6  # noqa: E731
    assert smaller["potential_savings_usd"] == pytest.approx(
        opus_tokens_at(4, 20, 5, 0.2) - opus_tokens_at(1, 5, 1.25, 0.1), rel=1e-6)
    assert smaller["scope"] == {"model": "claude-opus-5-5", "suggested_model": "claude-haiku-4-5"}
    assert found["high_api_error_rate"]["scope"] == {"model": "claude-opus-5-5"}
    assert "400: 1" in found["high_api_error_rate"]["message"]
    assert found["api_retries_exhausted"]["severity"] == "critical"
    found_in_order = fed.get_json("/insights")["insights"]
    order = [(SEVERITY_ORDER[i["severity"]], -i["potential_savings_usd"]) for i in found_in_order]
    assert order == sorted(order)  # critical first, then the largest saving


def test_unknown_models_are_counted_not_guessed(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: PLC0415
        ExportMetricsServiceRequest,
    )

    body = (CLAUDE / "t20_model_haiku" / "0049_http_metrics.pb").read_bytes()
    request = ExportMetricsServiceRequest.FromString(body)
    for metric in request.resource_metrics[0].scope_metrics[0].metrics:
        for point in metric.sum.data_points:
            for attribute in point.attributes:
                if attribute.key == "model":
                    attribute.value.string_value = "claude-mystery-9"
    bridge = RunningBridge(settings_for_test(tmp_path), clock=lambda: NOW)
    try:
        assert bridge.post("/v1/metrics", request.SerializeToString())[0] == 200
        scrape = bridge.scrape()
        assert scrape.total("otlp_bridge_unpriced_model", model="claude-mystery-9") == 1
        assert not [s for s in scrape.series("claude_code_cache_savings_usd") if s.get("model")]
        assert bridge.get_json("/summary")["unpriced_models"] == ["claude-mystery-9"]
    finally:
        bridge.stop()

from __future__ import annotations

import pytest

from otlp_bridge.translate.naming import label_name, metric_name

METRIC_CASES = [
    # name, unit, monotonic_sum, gauge, expected
    ("claude_code.session.count", "", True, False, "claude_code_session_count_total"),
    ("claude_code.cost.usage", "USD", True, False, "claude_code_cost_usage_USD_total"),
    ("claude_code.token.usage", "tokens", True, False, "claude_code_token_usage_tokens_total"),
    ("claude_code.lines_of_code.count", "", True, False, "claude_code_lines_of_code_count_total"),
    ("claude_code.pull_request.count", "", True, False, "claude_code_pull_request_count_total"),
    ("claude_code.commit.count", "", True, False, "claude_code_commit_count_total"),
    ("claude_code.code_edit_tool.decision", "", True, False, "claude_code_code_edit_tool_decision_total"),
    ("claude_code.active_time.total", "s", True, False, "claude_code_active_time_seconds_total"),
    ("http.server.duration", "ms", False, False, "http_server_duration_milliseconds"),
    ("http.server.duration_seconds", "s", False, False, "http_server_duration_seconds"),
    ("net.io", "By/s", False, False, "net_io_bytes_per_second"),
    ("queue.size", "{items}", False, False, "queue_size"),
    ("cpu.utilization", "1", False, True, "cpu_utilization_ratio"),
    ("cpu.utilization", "1", True, False, "cpu_utilization_total"),
    ("disk.used", "%", False, True, "disk_used_percent"),
    ("2xx.count", "", True, False, "_2xx_count_total"),
    ("weird--name..x", "", False, False, "weird_name_x"),
    ("temp", "Cel", False, True, "temp_celsius"),
]


@pytest.mark.parametrize(("name", "unit", "monotonic", "gauge", "expected"), METRIC_CASES)
def test_metric_name(name: str, unit: str, monotonic: bool, gauge: bool, expected: str) -> None:
    assert metric_name(name, unit, monotonic_sum=monotonic, gauge=gauge) == expected


@pytest.mark.parametrize(("key", "expected"), [
    ("session.id", "session_id"),
    ("user.email", "user_email"),
    ("team.id", "team_id"),
    ("0x", "key_0x"),
    ("_tmp", "key_tmp"),
    ("__reserved", "__reserved"),
    ("a-b/c", "a_b_c"),
    ("type", "type"),
])
def test_label_name(key: str, expected: str) -> None:
    assert label_name(key) == expected

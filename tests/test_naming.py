"""The naming rules as tables: metric names, label names, HELP text and family-name collisions."""

from __future__ import annotations

import pytest

from otlp_bridge.series import Kind
from otlp_bridge.translate.naming import (
    MAX_HELP,
    MAX_LABEL_NAME,
    MAX_METRIC_NAME,
    FamilyNames,
    help_text,
    is_label_name,
    label_name,
    metric_name,
    occupied_names,
)

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
    ("total", "s", True, False, "seconds_total"),
    ("...", "s", True, False, ""),
    ("", "", False, False, ""),
    ("名前", "", False, False, ""),
    ("a\x00b\nc", "", False, False, "a_b_c"),
    ("x", "9s", False, False, "x_9s"),
]


@pytest.mark.parametrize(("name", "unit", "monotonic", "gauge", "expected"), METRIC_CASES)
def test_metric_name(name: str, unit: str, monotonic: bool, gauge: bool, expected: str) -> None:
    assert metric_name(name, unit, monotonic_sum=monotonic, gauge=gauge) == expected


def test_long_metric_names_are_cut_before_their_suffixes() -> None:
    name = metric_name("word." * 4000, "By/s", monotonic_sum=True)
    assert len(name) <= MAX_METRIC_NAME
    assert name.endswith("_bytes_per_second_total")
    assert name.startswith("word_word")
    assert "__" not in name
    assert len(metric_name("1" * 10_000, "x" * 10_000)) <= MAX_METRIC_NAME


@pytest.mark.parametrize(("key", "expected"), [
    ("session.id", "session_id"),
    ("user.email", "user_email"),
    ("team.id", "team_id"),
    ("0x", "key_0x"),
    ("_tmp", "key_tmp"),
    ("__reserved", "key__reserved"),
    ("__name__", "key__name__"),
    ("__", ""),
    ("", ""),
    ("...", ""),
    ("名前", ""),
    ("名前.x", "key___x"),
    ("a-b/c", "a_b_c"),
    ("type", "type"),
    ("le", "key_le"),
    ("quantile", "key_quantile"),
    ("lE", "lE"),
    ("job", "job"),
    ("tab\there\x00", "tab_here_"),
    ("ü", ""),
    ("x" * 10_000, "x" * MAX_LABEL_NAME),
    ("9" * 10_000, "key_" + "9" * (MAX_LABEL_NAME - 4)),
])
def test_label_name(key: str, expected: str) -> None:
    assert label_name(key) == expected
    assert expected == "" or is_label_name(expected)


@pytest.mark.parametrize(("name", "valid"), [
    ("a", True), ("a_b9", True), ("_a", False), ("__name__", False), ("9a", False), ("le", False),
    ("quantile", False), ("", False), ("a-b", False), ("x" * (MAX_LABEL_NAME + 1), False),
])
def test_is_label_name(name: str, valid: bool) -> None:
    assert is_label_name(name) is valid


def test_help_text_is_capped_and_has_no_line_ends() -> None:
    assert help_text("", "OTLP metric x") == "OTLP metric x"
    assert help_text('a "quoted" \\ help', "-") == "a 'quoted' \\ help"
    assert help_text("line\nbreak\r\x00nul\u2028sep\x85", "-") == "line break  nul sep "
    long = help_text("h" * 50_000, "-")
    assert len(long) == MAX_HELP
    assert long.endswith("…")


FAMILY_CASES = [
    # existing families, new family, expected
    ([("foo", Kind.HISTOGRAM)], ("foo_count", Kind.GAUGE), "name_collision"),
    ([("foo", Kind.HISTOGRAM)], ("foo_bucket", Kind.GAUGE), "name_collision"),
    ([("foo", Kind.HISTOGRAM)], ("foo_created", Kind.GAUGE), "name_collision"),
    ([("foo", Kind.HISTOGRAM)], ("foo_total", Kind.COUNTER), "name_collision"),
    ([("foo", Kind.HISTOGRAM)], ("foo_count_total", Kind.COUNTER), "name_collision"),
    ([("foo_sum", Kind.GAUGE)], ("foo", Kind.HISTOGRAM), "name_collision"),
    ([("foo_total", Kind.COUNTER)], ("foo", Kind.GAUGE), "name_collision"),
    ([("foo_total", Kind.COUNTER)], ("foo_created", Kind.GAUGE), "name_collision"),
    ([("foo_total", Kind.COUNTER)], ("foo_total", Kind.GAUGE), "name_collision"),
    ([("foo_total", Kind.COUNTER)], ("foo", Kind.HISTOGRAM), "name_collision"),
    ([("foo", Kind.GAUGE)], ("foo_total", Kind.COUNTER), "name_collision"),
    ([("foo", Kind.GAUGE)], ("foo", Kind.HISTOGRAM), "name_collision"),
    ([("foo", Kind.GAUGE)], ("foo_total", Kind.GAUGE), None),
    ([("foo", Kind.GAUGE)], ("foo_count", Kind.GAUGE), None),
    ([("foo", Kind.HISTOGRAM)], ("foo_bucket_x", Kind.GAUGE), None),
    ([("foo_total", Kind.COUNTER)], ("foo_total", Kind.COUNTER), None),
    ([("foo", Kind.HISTOGRAM)], ("foo", Kind.HISTOGRAM), None),
    ([("foo", Kind.HISTOGRAM)], ("bar", Kind.HISTOGRAM), None),
    ([], ("anything_total", Kind.COUNTER), None),
]


@pytest.mark.parametrize(("existing", "new", "expected"), FAMILY_CASES)
def test_family_names_refuse_every_collision(existing: list[tuple[str, Kind]], new: tuple[str, Kind],
                                             expected: str | None) -> None:
    assert FamilyNames(existing).refusal(*new) == expected
    if len(existing) == 1 and existing[0] != new:  # the rule is symmetric: whichever came first
        assert FamilyNames([new]).refusal(*existing[0]) == expected


def test_occupied_names_cover_both_formats() -> None:
    assert occupied_names("foo_total", Kind.COUNTER) == {"foo_total", "foo", "foo_created"}
    assert occupied_names("foo", Kind.HISTOGRAM) == {"foo", "foo_bucket", "foo_count", "foo_sum", "foo_created"}
    assert occupied_names("foo_total", Kind.GAUGE) == {"foo_total"}

"""Real Claude Code requests replayed over the transport they were recorded on, then scraped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import CLAUDE, FIXTURES, USAGE_PER_REQUEST, RunningBridge, api_requests, replay, runs

TOKENS = "claude_code_token_usage_tokens_total"
COST = "claude_code_cost_usage_USD_total"
SESSIONS = "claude_code_session_count_total"


@pytest.mark.parametrize("run", list(runs()), ids=lambda p: p.name)
def test_every_run_gives_exact_token_and_session_totals(bridge: RunningBridge, run: Path) -> None:
    replay(bridge, run)
    scrape = bridge.scrape()
    requests = api_requests(run)
    for token_type, per_request in USAGE_PER_REQUEST.items():
        assert scrape.total(TOKENS, type=token_type) == per_request * requests, token_type
    assert scrape.total(SESSIONS) == 1
    # session.id is dropped by default: one series per label set, never one per session
    assert all("session_id" not in labels for labels in scrape.series(TOKENS))


def test_t7_write_edit_lines_and_decisions_and_nothing_else(bridge: RunningBridge) -> None:
    replay(bridge, CLAUDE / "t7_write_edit_acceptEdits")
    scrape = bridge.scrape()
    assert scrape.total(TOKENS, type="cacheRead") == 4567 * 3
    assert scrape.total(COST, model="claude-opus-5-5", effort="medium", query_source="main") == 0.0200862
    assert scrape.total("claude_code_lines_of_code_count_total", type="added") == 6
    assert scrape.total("claude_code_lines_of_code_count_total", type="removed") == 1
    decisions = "claude_code_code_edit_tool_decision_total"
    assert scrape.total(decisions, tool_name="Write", decision="accept", language="Python", source="config") == 1
    assert scrape.total(decisions, tool_name="Edit", decision="accept") == 1
    assert scrape.total(decisions, decision="reject") == 0
    assert scrape.total("claude_code_active_time_seconds_total", type="cli") == 0.379
    # the exact set of series: an unexpected extra line fails the test
    names = {name for name, _ in scrape.samples() if not name.startswith("otlp_bridge_")}
    histograms = ("api_request_cost_usd", "api_request_duration_seconds", "api_request_input_tokens",
                  "api_request_output_tokens", "api_request_ttft_seconds", "tool_duration_seconds",
                  "user_prompt_length_chars")
    assert names == {
        # from the metrics
        "target_info", SESSIONS, COST, TOKENS, decisions,
        "claude_code_lines_of_code_count_total", "claude_code_active_time_seconds_total",
        # from the events
        "claude_code_events_total", "claude_code_api_requests_total", "claude_code_tool_calls_total",
        "claude_code_tool_decisions_total", "claude_code_user_prompts_total",
        "claude_code_last_seen_timestamp_seconds",
        *(f"claude_code_{h}_{suffix}" for h in histograms for suffix in ("bucket", "count", "sum")),
        # derived
        "claude_code_cache_hit_ratio", "claude_code_cache_savings_usd", "claude_code_spend_usd",
        *(f"claude_code_plan_window_{g}" for g in ("spent_usd", "tokens", "requests", "end_timestamp_seconds",
                                                     "burn_rate_usd_per_hour", "projected_usd")),
        # the cross-agent ledger
        *(f"coding_agent_{c}_total" for c in ("tokens", "cost_usd", "requests", "tool_calls", "sessions")),
    }
    assert len(scrape.series(TOKENS)) == 4
    (labels,) = scrape.series(SESSIONS)
    assert labels == {
        "job": "claude-code", "start_type": "fresh", "terminal_type": "dumb", "anthropic_provider": "firstParty",
        "anthropic_custom_base_url": "true",
        "user_id": "84ee8d05ca167c1d2a531ac74fce4ca621f766927cd9b4903f49141581b9af45",
    }
    (info,) = scrape.series("target_info")
    assert info == {"job": "claude-code", "host_arch": "amd64", "os_type": "linux",
                    "os_version": "6.18.44-fc-v595", "service_version": "2.1.330"}


def test_t8_sparse_deltas_with_moving_start_times_add_up(bridge: RunningBridge) -> None:
    replay(bridge, CLAUDE / "t8_bash_sleep_multi_export")
    scrape = bridge.scrape()
    assert scrape.total(TOKENS, type="input") == 2 * 123
    assert scrape.total(COST) == 0.0066954 * 2
    # the second export carries active time only: 4.348 s, nothing before it
    assert scrape.total("claude_code_active_time_seconds_total") == 4.348


def test_t9_cumulative_five_exports_equal_one_delta(bridge: RunningBridge, tmp_path: Path) -> None:
    replay(bridge, CLAUDE / "t9_cumulative_sleep")
    scrape = bridge.scrape()
    assert scrape.total(SESSIONS) == 1  # re-sent five times, counted once
    assert scrape.total(TOKENS, type="cacheRead") == 2 * 4567
    assert scrape.total(TOKENS, type="cacheCreation") == 2 * 890
    assert scrape.total(COST) == 0.0133908
    assert scrape.total("claude_code_active_time_seconds_total") == 4.322


def test_t21_answered_and_retried_export_counts_once(bridge: RunningBridge) -> None:
    # The run's first two requests were refused (503) by the recorder and retried; replaying all
    # four here means the bridge sees the same points twice, under /some/prefix.
    replay(bridge, CLAUDE / "t21_http_503_retry_prefix")
    scrape = bridge.scrape()
    assert scrape.total(TOKENS, type="cacheRead") == 4567
    assert scrape.total(SESSIONS) == 1
    assert scrape.total("otlp_bridge_items_total", signal="metrics", outcome="duplicate") == 7


def test_t10_resource_attributes_and_version_become_labels(bridge: RunningBridge) -> None:
    replay(bridge, CLAUDE / "t10_fail_reject_details")
    (labels,) = bridge.scrape().series(SESSIONS)
    assert labels["department"] == "eng"
    assert labels["team_id"] == "platform"
    assert labels["cost_center"] == "cc-42"
    assert labels["app_version"] == "2.1.330"


def test_commit_and_pull_request_counts(bridge: RunningBridge) -> None:
    replay(bridge, CLAUDE / "t18_git_commit")
    replay(bridge, CLAUDE / "t19_gh_pr")
    scrape = bridge.scrape()
    assert scrape.total("claude_code_commit_count_total") == 1
    assert scrape.total("claude_code_pull_request_count_total") == 1
    assert scrape.total(SESSIONS) == 2


def test_label_sets_that_vary_within_a_metric_render_valid(bridge: RunningBridge) -> None:
    replay(bridge, CLAUDE / "t20_model_haiku")  # no `effort` attribute
    replay(bridge, CLAUDE / "t1_http_protobuf_sayhi")  # with `effort`
    scrape = bridge.scrape()
    assert scrape.total(COST, model="claude-haiku-4-5") == 0.0019022
    assert scrape.total(COST, model="claude-opus-5-5", effort="medium") == 0.0066954
    haiku = [s for s in scrape.series(COST) if s["model"] == "claude-haiku-4-5"]
    assert haiku
    assert "effort" not in haiku[0]


def test_older_cli_keeps_context_suffix_in_model_label(bridge: RunningBridge) -> None:
    replay(bridge, FIXTURES / "claude-code-2.1.197" / "t17_v2.1.197_write_accept")
    scrape = bridge.scrape()
    assert {s["model"] for s in scrape.series(COST)} == {"claude-opus-4-8[1m]"}
    assert {s["model"] for s in scrape.series("claude_code_lines_of_code_count_total")} == {"claude-opus-4-8"}


def test_traces_are_accepted_counted_and_discarded(bridge: RunningBridge) -> None:
    replay(bridge, CLAUDE / "t26_traces_beta")
    replay(bridge, CLAUDE / "t27_traces_beta_json")
    scrape = bridge.scrape()
    assert scrape.total("otlp_bridge_items_total", signal="traces", outcome="discarded") > 0
    assert scrape.total("otlp_bridge_requests_total", signal="traces", outcome="success") == 2
    assert not [n for n, _ in scrape.samples() if "span" in n]

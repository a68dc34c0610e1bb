"""Every family the bridge makes itself, and the names no client may write.

Client points whose family is one of these, or starts with the bridge's own prefix, are refused
(`reserved_name`): a sender must not be able to forge spend or events, nor make `/metrics` carry two
families of one name. Claude Code's own instruments are reserved to their real kind, so an earlier
point of another kind can never lock the real counter out.
"""

from __future__ import annotations

from otlp_bridge.series import FamilyMeta, Kind

OWN_PREFIX = "otlp_bridge_"
INTERNAL_PREFIX = OWN_PREFIX + "internal_"  # never exposed: state the bridge keeps for itself
LEDGER_PREFIX = "coding_agent_"  # the normalized cross-agent ledger (derive/ledger.py)


def _counter(name: str, help_: str) -> FamilyMeta:
    return FamilyMeta(name, Kind.COUNTER, help_)


def _histogram(name: str, help_: str) -> FamilyMeta:
    return FamilyMeta(name, Kind.HISTOGRAM, help_)


def _gauge(name: str, help_: str) -> FamilyMeta:
    return FamilyMeta(name, Kind.GAUGE, help_, monotonic=False)


# --- from Claude Code's events -------------------------------------------------------------------
EVENTS = _counter("claude_code_events_total", "Claude Code events received, by event name.")
API_REQUESTS = _counter("claude_code_api_requests_total", "Successful API requests, by model and query source.")
API_DURATION = _histogram("claude_code_api_request_duration_seconds", "API request duration.")
API_TTFT = _histogram("claude_code_api_request_ttft_seconds", "API request time to first token.")
API_COST = _histogram("claude_code_api_request_cost_usd", "Cost of one API request (client estimate, USD).")
API_INPUT = _histogram("claude_code_api_request_input_tokens", "Uncached input tokens of one API request.")
API_OUTPUT = _histogram("claude_code_api_request_output_tokens", "Output tokens of one API request.")
CACHE_WRITES = _counter("claude_code_api_cache_write_tokens_total",
                        "Cache-write tokens of API requests by lifetime (ttl 5m or 1h), from api_request events.")
API_ERRORS = _counter("claude_code_api_errors_total",
                      "API requests that failed (one api_error event each, after the CLI's own retries), "
                      "by model and status.")
API_ERROR_ATTEMPTS = _counter("claude_code_api_error_attempts_total",
                              "Attempts made for API requests that failed (the api_error event's `attempt`).")
API_EXHAUSTED = _counter("claude_code_api_retries_exhausted_total",
                         "API requests that failed after all retries, by model and status.")
TOOL_CALLS = _counter("claude_code_tool_calls_total", "Tool calls finished, by tool and success.")
TOOL_DURATION = _histogram("claude_code_tool_duration_seconds", "Tool call duration.")
TOOL_DECISIONS = _counter("claude_code_tool_decisions_total", "Tool permission decisions.")
PROMPTS = _counter("claude_code_user_prompts_total", "User prompts submitted (slash commands like /cost excluded).")
PROMPT_LENGTH = _histogram("claude_code_user_prompt_length_chars", "Length of a user prompt, in characters.")
COMMANDS = _counter("claude_code_slash_commands_total", "Slash commands used.")
WORKFLOWS = _counter("claude_code_prompt_workflows_total",
                     "Prompts by workflow (keyword classifier; only when prompt text is logged).")
MODEL_SWITCHES = _counter("claude_code_model_switches_total", "Model changes within a session.")
SESSION_DURATION = _histogram("claude_code_session_duration_seconds",
                              "Session length, first to last event, observed when the session goes idle.")
LAST_SEEN = _gauge("claude_code_last_seen_timestamp_seconds", "When a user/device last sent an event (Unix time).")

# --- per-session state, kept as internal gauges so it is durable like everything else -------------
SESSION_START = _gauge(INTERNAL_PREFIX + "session_start_seconds", "First event of a live session (internal).")
SESSION_LAST = _gauge(INTERNAL_PREFIX + "session_last_seconds", "Latest event of a live session (internal).")
SESSION_MODEL = _gauge(INTERNAL_PREFIX + "session_model_seconds",
                       "When a live session last used a model (internal; the newest is its current model).")

# --- computed at scrape time from the store (expose/derived.py) -----------------------------------
DERIVED_GAUGES = frozenset({
    "claude_code_active_sessions", "claude_code_cache_hit_ratio", "claude_code_cache_savings_usd",
    "claude_code_spend_usd", "claude_code_plan_value_ratio", "claude_code_budget_limit_usd",
    "claude_code_budget_spent_usd", "claude_code_budget_remaining_usd", "claude_code_budget_used_ratio",
    "claude_code_budget_burn_rate_usd_per_hour", "claude_code_budget_forecast_usd",
    "claude_code_budget_exhausted_timestamp_seconds",
    # plan windows (derive/blocks.py GAUGES)
    "claude_code_plan_window_spent_usd", "claude_code_plan_window_tokens", "claude_code_plan_window_requests",
    "claude_code_plan_window_end_timestamp_seconds", "claude_code_plan_window_burn_rate_usd_per_hour",
    "claude_code_plan_window_projected_usd",
})

# --- Claude Code's own instruments, as the Collector names them -----------------------------------
COST = "claude_code_cost_usage_USD_total"
TOKENS = "claude_code_token_usage_tokens_total"
# All eight are monotonic counters; a point of another kind under one of these names is refused.
CLAUDE_CODE_COUNTERS = frozenset({
    "claude_code_session_count_total", COST, TOKENS, "claude_code_lines_of_code_count_total",
    "claude_code_code_edit_tool_decision_total", "claude_code_commit_count_total",
    "claude_code_pull_request_count_total", "claude_code_active_time_seconds_total",
})
TARGET_INFO = _gauge("target_info", "Target metadata")

OWN_FAMILIES: tuple[FamilyMeta, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, FamilyMeta)
)
_OWN_NAMES = frozenset(meta.name for meta in OWN_FAMILIES) | DERIVED_GAUGES


def refusal(meta: FamilyMeta) -> str | None:
    """Why a client point may not write this family (None: it may)."""
    if meta.name.startswith((OWN_PREFIX, LEDGER_PREFIX)) or meta.name in _OWN_NAMES:
        return "reserved_name"
    if meta.name in CLAUDE_CODE_COUNTERS and (meta.kind is not Kind.COUNTER or not meta.monotonic):
        return "reserved_name"
    return None

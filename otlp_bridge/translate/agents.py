"""Which coding agent a stream comes from, and what each agent's own series mean in the shared ledger.

The generic translation keeps every agent's series exactly as the Collector names them
(`gemini_cli_token_usage_total`, `codex_turn_token_usage`, …), so dashboards written for one agent
keep working. This module only reads them: it names the agent, and for the few series that carry
tokens, cost, requests, tool calls and sessions it says how their points map onto one meaning
(`derive/ledger.py` applies that).

Token semantics differ between the agents (from the recordings in proto_fixtures/other-agents):

| agent       | raw series (type label)              | raw type          | ledger types                  |
|-------------|--------------------------------------|-------------------|-------------------------------|
| claude-code | claude_code_token_usage_tokens_total | input             | input                         |
|             | (type)                               | cacheRead         | cache_read                    |
|             |                                      | cacheCreation     | cache_write                   |
|             |                                      | output            | output (thinking inside) [1]  |
| gemini-cli  | gemini_cli_token_usage_total (type)  | input             | input (cached inside)         |
|             |                                      | cache             | cache_read, −input            |
|             |                                      | output            | output (thoughts outside)     |
|             |                                      | thought           | reasoning                     |
|             |                                      | tool              | input [2]                     |
| codex       | codex_turn_token_usage, its sum      | input             | input (cached inside)         |
|             | (token_type)                         | cached_input      | cache_read, −input            |
|             |                                      | cache_write_input | cache_write, −input           |
|             |                                      | output            | output (reasoning inside)     |
|             |                                      | reasoning_output  | reasoning, −output            |
|             |                                      | total             | ignored (input + output)      |

[1] Claude Code does not report thinking apart from output. [2] Gemini's tool-use prompt tokens are
billed as input and are not inside promptTokenCount (the recordings have none).

So in the ledger `input` is always uncached input, and `output` never includes what an agent reports
separately as reasoning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from otlp_bridge import families


class Agent(StrEnum):
    CLAUDE_CODE = "claude-code"
    GEMINI_CLI = "gemini-cli"
    CODEX = "codex"


# The instrumentation scope names the agent even when the user renames the service
# (OTEL_SERVICE_NAME); service.name is the fallback for a scope we have not seen.
_SCOPES = MappingProxyType({
    "com.anthropic.claude_code": Agent.CLAUDE_CODE,
    "com.anthropic.claude_code.events": Agent.CLAUDE_CODE,
    "gemini-cli": Agent.GEMINI_CLI,
    "codex": Agent.CODEX,
    "codex_otel.log_only": Agent.CODEX,
})
# Codex names the service after its process: `codex exec`, the TUI, and the app-server daemon the
# TUI starts (which runs the conversation and keeps exporting after the TUI exits).
_SERVICES = MappingProxyType({
    "claude-code": Agent.CLAUDE_CODE,
    "gemini-cli": Agent.GEMINI_CLI,
    "codex_exec": Agent.CODEX,
    "codex_cli_rs": Agent.CODEX,
    "codex-app-server": Agent.CODEX,
})


def recognise(scope: str, service_name: str = "") -> Agent | None:
    """The agent behind an instrumentation scope (meter or logger name) and resource service.name."""
    return _SCOPES.get(scope) or _SERVICES.get(service_name)


class Measure(StrEnum):
    TOKENS = "tokens"
    COST = "cost"
    REQUESTS = "requests"
    TOOL_CALLS = "tool_calls"
    SESSIONS = "sessions"


TOKEN_TYPES = ("input", "cache_read", "cache_write", "output", "reasoning")
Parts = tuple[tuple[str, int], ...]  # (ledger token type, +1 or −1)


def _always(_labels: Mapping[str, str]) -> bool:
    return True


@dataclass(frozen=True)
class Source:
    """One raw series the ledger reads.

    `key` is the raw label that says what a point counts (the token type); it is consumed, and
    `parts` maps its values to ledger token types. `rename` maps raw label names to the ledger's
    (e.g. `function_name` → `tool`). `counts` keeps only the points the ledger's meaning covers
    (successful requests)."""

    agent: Agent
    family: str
    measure: Measure
    key: str = ""
    parts: Mapping[str, Parts] = field(default_factory=dict)
    rename: Mapping[str, str] = field(default_factory=dict)
    counts: Callable[[Mapping[str, str]], bool] = _always


def _success(labels: Mapping[str, str]) -> bool:
    return labels.get("success", "true") == "true"


def _answered(labels: Mapping[str, str]) -> bool:
    # Gemini counts failed API calls too, under their HTTP status.
    return labels.get("status_code", "200").startswith("2")


_CLAUDE_TOKENS: Mapping[str, Parts] = {
    "input": (("input", 1),), "cacheRead": (("cache_read", 1),),
    "cacheCreation": (("cache_write", 1),), "output": (("output", 1),),
}
_GEMINI_TOKENS: Mapping[str, Parts] = {
    "input": (("input", 1),), "cache": (("cache_read", 1), ("input", -1)),
    "output": (("output", 1),), "thought": (("reasoning", 1),), "tool": (("input", 1),),
}
# `cache_write_input` is taken to be inside `input` as `cached_input` is (total = input + output);
# every recorded response had none, so this one row is not proven by the recordings.
_CODEX_TOKENS: Mapping[str, Parts] = {
    "input": (("input", 1),), "cached_input": (("cache_read", 1), ("input", -1)),
    "cache_write_input": (("cache_write", 1), ("input", -1)),
    "output": (("output", 1),), "reasoning_output": (("reasoning", 1), ("output", -1)),
}

# Cost: one source per agent, so nothing is counted twice. Claude Code reports its cost as a metric
# (its api_request events carry the same dollars and are not used). Gemini CLI reports none: its
# tokens are priced. Codex reports `codex.turn.cost_microusd` only for turns its TUI polls for
# (every 150 s, API-key auth, never in `codex exec`), and that metric cannot be matched to the turns
# in `codex.turn.token_usage` (no turn id there): its tokens are priced, and the reported cost stays
# in its raw series.
SOURCES: Mapping[str, Source] = MappingProxyType({source.family: source for source in (
    Source(Agent.CLAUDE_CODE, families.TOKENS, Measure.TOKENS, "type", _CLAUDE_TOKENS),
    Source(Agent.CLAUDE_CODE, families.COST, Measure.COST),
    Source(Agent.CLAUDE_CODE, families.API_REQUESTS.name, Measure.REQUESTS),
    Source(Agent.CLAUDE_CODE, families.TOOL_CALLS.name, Measure.TOOL_CALLS, rename={"tool_name": "tool"}),
    Source(Agent.CLAUDE_CODE, "claude_code_session_count_total", Measure.SESSIONS),
    Source(Agent.GEMINI_CLI, "gemini_cli_token_usage_total", Measure.TOKENS, "type", _GEMINI_TOKENS),
    Source(Agent.GEMINI_CLI, "gemini_cli_api_request_count_total", Measure.REQUESTS, counts=_answered),
    Source(Agent.GEMINI_CLI, "gemini_cli_tool_call_count_total", Measure.TOOL_CALLS,
           rename={"function_name": "tool"}),
    Source(Agent.GEMINI_CLI, "gemini_cli_session_count_total", Measure.SESSIONS),
    Source(Agent.CODEX, "codex_turn_token_usage", Measure.TOKENS, "token_type", _CODEX_TOKENS),
    Source(Agent.CODEX, "codex_api_request_total", Measure.REQUESTS, counts=_success),
    Source(Agent.CODEX, "codex_tool_call_total", Measure.TOOL_CALLS),
    # A thread is a conversation; the TUI also starts a hidden one to title the thread.
    Source(Agent.CODEX, "codex_thread_started_total", Measure.SESSIONS),
)})

# Who reports cost, and who is priced from the table (see above).
REPORTS_COST = frozenset(source.agent for source in SOURCES.values() if source.measure is Measure.COST)

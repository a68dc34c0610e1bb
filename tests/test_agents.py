"""Gemini CLI and Codex CLI recordings replayed over the transport each request was recorded on.

The raw series keep the names the generic translation gives them; the ledger series equal the stand-in
API's own usage (`api_usage.jsonl`) under one meaning; Claude Code's numbers are unchanged; one bridge
fed by all three agents keeps per-agent totals that add up.
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from otlp_bridge.cli import main
from otlp_bridge.client_env import agent_setup
from otlp_bridge.decode import Signal, decode_json, decode_protobuf
from otlp_bridge.derive.ledger import Ledger, agent_cost_insights, priced_cost
from otlp_bridge.derive.pricing import PriceTable, listed_price
from otlp_bridge.series import Applied, FamilyMeta, Kind
from otlp_bridge.store.accumulator import Store
from otlp_bridge.translate.agents import Agent, recognise
from tests.support import (
    CLAUDE,
    FIXTURES,
    PROTOBUF_HEADERS,
    USAGE_PER_REQUEST,
    RunningBridge,
    api_requests,
    replay,
    settings_for_test,
)

OTHER = FIXTURES / "other-agents"
RUNS = sorted(p for p in OTHER.glob("*/*") if p.is_dir())
AGENT_OF_DIR = {"gemini-0.61.0": Agent.GEMINI_CLI, "codex-0.169.0": Agent.CODEX}
LEDGER_TOKENS = "coding_agent_tokens_total"
LEDGER_COST = "coding_agent_cost_usd_total"
PRICES = PriceTable()


def agent_of(run: Path) -> Agent:
    return AGENT_OF_DIR[run.parent.name]


class Scraped:
    """One scrape parsed once (a Codex scrape is over a megabyte of histograms)."""

    def __init__(self, bridge: RunningBridge) -> None:
        scrape = bridge.scrape()
        self.text = scrape.text
        self.samples = scrape.samples()

    def total(self, name: str, **match: str) -> float:
        return sum(v for (n, labels), v in self.samples.items()
                   if n == name and all((k, val) in labels for k, val in match.items()))

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (n, labels) in self.samples if n == name]


# --- the recordings --------------------------------------------------------------------------------
def recorded(run: Path) -> Iterator[tuple[dict[str, Any], bytes]]:
    for meta_path in sorted(run.glob("*.meta.json")):
        meta = json.loads(meta_path.read_text())
        yield meta, (run / meta["file"]).read_bytes()


def replay_recorded(bridge: RunningBridge, run: Path) -> None:
    """Every request over the transport, path and content type it was recorded with."""
    for meta, body in recorded(run):
        if meta["transport"] == "grpc":
            bridge.grpc_export(meta["signal"], body)
        else:
            status, answer, _ = bridge.post(meta["path"], body, {"Content-Type": meta["content_type"]})
            assert status == 200, (meta["file"], status, answer)


def decoded(meta: dict[str, Any], body: bytes) -> Message:
    signal = Signal(meta["signal"])
    return decode_json(signal, body) if meta["file"].endswith(".json") else decode_protobuf(signal, body)


def usage(run: Path) -> list[dict[str, Any]]:
    """The model API's answers in a run (turn-cost polls left out)."""
    rows = [json.loads(line) for line in (run / "api_usage.jsonl").read_text().splitlines()]
    return [row for row in rows if "usage" in row]


def raw_truth(run: Path) -> Counter[tuple[str, str]]:
    """(model, the agent's own token type) → tokens, as the API reported them."""
    out: Counter[tuple[str, str]] = Counter()
    for row in usage(run):
        u, model = row["usage"], row["model"]
        if agent_of(run) is Agent.GEMINI_CLI:
            pairs = {"input": "promptTokenCount", "cache": "cachedContentTokenCount",
                     "output": "candidatesTokenCount", "thought": "thoughtsTokenCount",
                     "tool": "toolUsePromptTokenCount"}
            for kind, key in pairs.items():
                out[model, kind] += u.get(key, 0)
        else:
            out[model, "input"] += u["input_tokens"]
            out[model, "cached_input"] += u.get("input_tokens_details", {}).get("cached_tokens", 0)
            out[model, "output"] += u["output_tokens"]
            out[model, "reasoning_output"] += u.get("output_tokens_details", {}).get("reasoning_tokens", 0)
    return out


def ledger_truth(run: Path) -> Counter[tuple[str, str]]:
    """(model, ledger type) → tokens, by the documented meaning, straight from the API's usage."""
    out: Counter[tuple[str, str]] = Counter()
    for row in usage(run):
        u, model = row["usage"], row["model"]
        if agent_of(run) is Agent.GEMINI_CLI:
            cached = u.get("cachedContentTokenCount", 0)
            out[model, "input"] += u["promptTokenCount"] - cached + u.get("toolUsePromptTokenCount", 0)
            out[model, "cache_read"] += cached
            out[model, "output"] += u["candidatesTokenCount"]
            out[model, "reasoning"] += u.get("thoughtsTokenCount", 0)
        else:
            cached = u.get("input_tokens_details", {}).get("cached_tokens", 0)
            reasoning = u.get("output_tokens_details", {}).get("reasoning_tokens", 0)
            out[model, "input"] += u["input_tokens"] - cached
            out[model, "cache_read"] += cached
            out[model, "output"] += u["output_tokens"] - reasoning
            out[model, "reasoning"] += reasoning
    return out


# --- recognition -----------------------------------------------------------------------------------
@pytest.mark.parametrize("run", [*RUNS, CLAUDE / "t1_http_protobuf_sayhi"], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recorded_scope_and_service_names_its_agent(run: Path) -> None:
    expected = AGENT_OF_DIR.get(run.parent.name, Agent.CLAUDE_CODE)
    seen = set()
    for meta_path in sorted(run.glob("*.meta.json")):
        meta = json.loads(meta_path.read_text())
        body = next(p for p in run.iterdir() if p.name.startswith(meta_path.name.removesuffix(".meta.json") + ".")
                    and not p.name.endswith(".meta.json")).read_bytes()
        request = decoded({"signal": meta["signal"], "file": meta.get("file", meta["path"])}, body)
        for resource in getattr(request, f"resource_{meta['signal']}"):
            service = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
            for scoped in getattr(resource, f"scope_{meta['signal']}"):
                seen.add(recognise(scoped.scope.name, service))
    assert seen == {expected}
    assert recognise("some.other.meter", "codex-app-server") is Agent.CODEX  # the service as fallback
    assert recognise("some.other.meter", "my-service") is None


# --- every run: raw series and the ledger, exact -----------------------------------------------------
@pytest.mark.parametrize("run", RUNS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_raw_series_and_ledger_equal_the_api_usage(bridge: RunningBridge, run: Path) -> None:
    replay_recorded(bridge, run)
    scrape = Scraped(bridge)
    agent = agent_of(run).value
    calls = len(usage(run))
    # The agent's own series, under the names the generic translation gives them.
    if agent_of(run) is Agent.GEMINI_CLI:
        for (model, kind), tokens in raw_truth(run).items():
            assert scrape.total("gemini_cli_token_usage_total", model=model, type=kind) == tokens, (model, kind)
        assert scrape.total("gen_ai_client_token_usage_sum", gen_ai_token_type="input") == sum(
            tokens for (_, kind), tokens in raw_truth(run).items() if kind == "input")
        assert scrape.total("gemini_cli_api_request_count_total") == calls
    else:
        for (model, kind), tokens in raw_truth(run).items():
            assert scrape.total("codex_turn_token_usage_sum", model=model, token_type=kind) == tokens, (model, kind)
        assert scrape.total("codex_api_request_total", success="true") == calls
    # The ledger: one meaning, exact per model and type.
    truth = ledger_truth(run)
    for (model, kind), tokens in truth.items():
        assert scrape.total(LEDGER_TOKENS, agent=agent, model=model, type=kind) == tokens, (model, kind)
    assert scrape.total(LEDGER_TOKENS, agent=agent) == sum(truth.values())
    assert scrape.total(LEDGER_TOKENS, type="cache_write") == 0
    assert scrape.total("coding_agent_requests_total", agent=agent) == calls
    # Cost: priced from the table (neither agent's own cost is used), per model.
    for model in {m for m, _ in truth}:
        price = listed_price(PRICES, model)
        assert price is not None, model
        expected = priced_cost({kind: v for (m, kind), v in truth.items() if m == model}, price)
        got = scrape.total(LEDGER_COST, agent=agent, model=model, source="priced")
        assert got == pytest.approx(expected, rel=1e-12)
    assert scrape.total(LEDGER_COST, source="reported") == 0
    assert not scrape.series("coding_agent_unpriced_tokens_total")


def test_prices_by_hand(bridge: RunningBridge) -> None:
    replay_recorded(bridge, OTHER / "codex-0.169.0" / "plain-http")
    replay_recorded(bridge, OTHER / "gemini-0.61.0" / "plain-http")
    scrape = Scraped(bridge)
    # gpt-5.1-codex: 132 uncached × $1.25 + 300 cached × $0.125 + (44 + 21 reasoning) × $10, per million
    assert scrape.total(LEDGER_COST, agent="codex") == pytest.approx(852.5e-6, rel=1e-12)
    # gemini-2.5-flash: 121 × $0.30 + 200 × $0.03 + (54 + 17 thinking) × $2.50, per million
    assert scrape.total(LEDGER_COST, agent="gemini-cli") == pytest.approx(219.8e-6, rel=1e-12)


def test_codex_reported_turn_cost_stays_raw_and_is_not_added(bridge: RunningBridge) -> None:
    run = OTHER / "codex-0.169.0" / "tui-turn-cost-http"
    replay_recorded(bridge, run)
    scrape = Scraped(bridge)
    polls = [json.loads(line) for line in (run / "api_usage.jsonl").read_text().splitlines()]
    reported = sum(float(t["total_usd"]) for row in polls for t in row.get("turns", ()))
    assert scrape.total("codex_turn_cost_microusd_total") == pytest.approx(reported * 1e6)
    (cost,) = scrape.series("codex_turn_cost_microusd_total")  # turn and conversation ids dropped: one series
    assert "turn_id" not in cost
    assert {s["source"] for s in scrape.series(LEDGER_COST)} == {"priced"}
    # Two of the three responses were the user's turn, one the hidden thread-title conversation.
    assert scrape.total("coding_agent_sessions_total", agent="codex") == 2
    assert scrape.total("coding_agent_tool_calls_total", agent="codex", tool="exec_command", success="true") == 1


@pytest.mark.parametrize("name", ["gemini-0.61.0/long-session-http", "codex-0.169.0/long-session-http"])
def test_a_client_retry_is_not_counted_twice_in_the_ledger(bridge: RunningBridge, name: str) -> None:
    run = OTHER / name
    replay_recorded(bridge, run)
    first = Scraped(bridge)
    replay_recorded(bridge, run)
    again = Scraped(bridge)
    for family in (LEDGER_TOKENS, LEDGER_COST, "coding_agent_requests_total", "coding_agent_sessions_total"):
        assert again.total(family) == first.total(family) > 0, family


def test_gemini_prompt_text_never_becomes_a_label(bridge: RunningBridge) -> None:
    run = OTHER / "gemini-0.61.0" / "plain-http-nologprompts"
    (meta, body), *_ = [(m, b) for m, b in recorded(run) if m["signal"] == "metrics"]
    resource = decoded(meta, body).resource_metrics[0].resource  # type: ignore[attr-defined]
    argv = next(a.value for a in resource.attributes if a.key == "process.command_args")
    prompt = argv.array_value.values[-1].string_value  # `-p "<prompt>"` … is the argv's tail
    assert prompt
    replay_recorded(bridge, run)
    scrape = Scraped(bridge)
    assert "process_command_args" not in scrape.text
    assert "routing_reasoning" not in scrape.text
    assert prompt not in scrape.text
    (info,) = scrape.series("target_info")
    assert info["job"] == "gemini-cli"
    assert "process_executable_name" in info  # the rest of the resource is still there


# --- all three agents in one bridge ------------------------------------------------------------------
MIXED = [CLAUDE / "t7_write_edit_acceptEdits", OTHER / "gemini-0.61.0" / "default-model-http",
         OTHER / "codex-0.169.0" / "two-tools-grpc"]


def test_three_agents_one_ledger_that_adds_up(bridge: RunningBridge) -> None:
    claude, gemini, codex = MIXED
    replay(bridge, claude)
    replay_recorded(bridge, gemini)
    replay_recorded(bridge, codex)
    scrape = Scraped(bridge)
    # Claude Code's own numbers are unchanged, and its ledger rows are exactly them.
    n = api_requests(claude)
    raw_to_ledger = {"input": "input", "cacheRead": "cache_read", "cacheCreation": "cache_write", "output": "output"}
    for raw, kind in raw_to_ledger.items():
        assert scrape.total("claude_code_token_usage_tokens_total", type=raw) == USAGE_PER_REQUEST[raw] * n
        assert scrape.total(LEDGER_TOKENS, agent="claude-code", type=kind) == USAGE_PER_REQUEST[raw] * n
    claude_cost = scrape.total("claude_code_cost_usage_USD_total")
    assert scrape.total(LEDGER_COST, agent="claude-code", source="reported") == claude_cost > 0
    assert scrape.total("coding_agent_requests_total", agent="claude-code") == n
    # Per agent, and all together: the summary and /metrics say the same, and the parts add up.
    summary = bridge.get_json("/summary")["agents"]
    rows = {row["agent"]: row for row in summary["agents"]}
    assert set(rows) == {"claude-code", "gemini-cli", "codex"}
    for agent, row in rows.items():
        assert row["cost_usd"] == pytest.approx(scrape.total(LEDGER_COST, agent=agent), abs=1e-9)  # rounded
        for kind, tokens in row["tokens"].items():
            assert tokens == scrape.total(LEDGER_TOKENS, agent=agent, type=kind)
        assert row["requests"] == scrape.total("coding_agent_requests_total", agent=agent)
    assert rows["gemini-cli"]["tokens"]["input"] == sum(v for (_, k), v in ledger_truth(gemini).items() if k == "input")
    assert rows["codex"]["tool_calls"] == 2
    assert rows["claude-code"]["cost_sources"] == ["reported"]
    assert summary["cost_usd"] == pytest.approx(sum(row["cost_usd"] for row in rows.values()), abs=1e-9)
    assert summary["cost_usd"] == pytest.approx(scrape.total(LEDGER_COST), abs=1e-9)
    for kind in ("input", "cache_read", "output", "reasoning"):
        assert summary["tokens"][kind] == sum(row["tokens"][kind] for row in rows.values())


def test_a_budget_can_match_an_agent_and_a_combined_one_adds_up(tmp_path: Path) -> None:
    budgets = [{"name": "all", "period": "month", "limit_usd": 100.0},
               {"name": "codex", "period": "month", "limit_usd": 100.0, "match": {"agent": "codex"}}]
    running = RunningBridge(settings_for_test(tmp_path, budgets=budgets))
    try:
        replay(running, MIXED[0])
        for run in MIXED[1:]:
            replay_recorded(running, run)
        scrape = Scraped(running)
        spent = {b["name"]: b["spent_usd"] for b in running.get_json("/summary")["budgets"]}
        assert spent["codex"] == pytest.approx(scrape.total(LEDGER_COST, agent="codex"))
        assert spent["all"] == pytest.approx(scrape.total(LEDGER_COST))
    finally:
        running.stop()


# --- pricing and setup --------------------------------------------------------------------------------
def test_listed_prices_are_never_guessed_from_a_longer_name() -> None:
    assert listed_price(PRICES, "gpt-5.1-codex") == listed_price(PRICES, "gpt-5.1-codex-2025-11-13") is not None
    assert listed_price(PRICES, "gpt-5.1-codex-mini") is None
    assert listed_price(PRICES, "gemini-2.5-flash-lite") != listed_price(PRICES, "gemini-2.5-flash")
    assert listed_price(PRICES, "gemini-9-flash-preview") is None
    assert listed_price(PriceTable({"gemini-9-flash-preview": PRICES.prices["gpt-5"]}), "gemini-9-flash-preview")


def test_codex_setup_is_toml_with_an_endpoint_per_signal() -> None:
    table = tomllib.loads(agent_setup("codex", "http/protobuf", "http://10.0.0.5:4318/otlp/", "s3cret", "bash"))
    otel = table["otel"]
    assert otel["log_user_prompt"] is False
    assert otel["exporter"]["otlp-http"] == {"endpoint": "http://10.0.0.5:4318/otlp/v1/logs", "protocol": "binary",
                                             "headers": {"authorization": "Bearer s3cret"}}
    assert otel["metrics_exporter"]["otlp-http"]["endpoint"] == "http://10.0.0.5:4318/otlp/v1/metrics"
    grpc = tomllib.loads(agent_setup("codex", "grpc", "http://127.0.0.1:4317", None, "bash"))["otel"]
    assert grpc["metrics_exporter"] == {"otlp-grpc": {"endpoint": "http://127.0.0.1:4317"}}


def test_gemini_setup_speaks_only_what_gemini_sends(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "--agent", "gemini", "--protocol", "http/json", "--endpoint", "http://127.0.0.1:4318"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "export GEMINI_TELEMETRY_OTLP_PROTOCOL='http'" in lines
    assert "export GEMINI_TELEMETRY_OTLP_ENDPOINT='http://127.0.0.1:4318'" in lines
    assert "export GEMINI_TELEMETRY_LOG_PROMPTS='false'" in lines
    assert main(["env", "--agent", "gemini", "--protocol", "http/protobuf"]) == 2
    assert "JSON only" in capsys.readouterr().err


def test_other_agents_logs_are_not_claude_code_events(bridge: RunningBridge) -> None:
    replay_recorded(bridge, OTHER / "gemini-0.61.0" / "toolcall-http")
    replay_recorded(bridge, OTHER / "codex-0.169.0" / "toolcall-http")
    scrape = Scraped(bridge)
    # Gemini's records would otherwise arrive as claude_code_events_total with a process_pid label each.
    assert not scrape.series("claude_code_events_total")
    assert not scrape.series("claude_code_last_seen_timestamp_seconds")


def renamed_model(body: bytes, model: str) -> bytes:
    """A real Codex metrics export whose points name another model."""
    request = ExportMetricsServiceRequest.FromString(body)
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in getattr(metric, metric.WhichOneof("data")).data_points:
                    for attribute in point.attributes:
                        if attribute.key == "model":
                            attribute.value.string_value = model
    return request.SerializeToString()


@pytest.mark.parametrize("priced", [False, True], ids=["unlisted", "priced-in-config"])
def test_an_unlisted_model_is_counted_not_guessed(tmp_path: Path, priced: bool) -> None:
    pricing = {"gpt-5.1-codex-mini": {"input": 0.25, "output": 2.0, "cache_write_5m": 0.25,
                                      "cache_write_1h": 0.25, "cache_read": 0.025}} if priced else {}
    running = RunningBridge(settings_for_test(tmp_path, pricing=pricing))
    try:
        run = OTHER / "codex-0.169.0" / "plain-http"
        (meta, body), *_ = [(m, b) for m, b in recorded(run) if m["signal"] == "metrics"]
        status, _, _ = running.post(meta["path"], renamed_model(body, "gpt-5.1-codex-mini"), PROTOBUF_HEADERS)
        assert status == 200
        scrape = Scraped(running)
        tokens = scrape.total(LEDGER_TOKENS, agent="codex", model="gpt-5.1-codex-mini")
        assert tokens == sum(ledger_truth(run).values())
        agents = {row["agent"]: row for row in running.get_json("/summary")["agents"]["agents"]}
        if priced:  # 132 × 0.25 + 300 × 0.025 + 65 × 2.0, per million
            assert scrape.total(LEDGER_COST, agent="codex") == pytest.approx(170.5e-6, rel=1e-12)
            assert not scrape.series("coding_agent_unpriced_tokens_total")
        else:  # not priced as gpt-5.1-codex, whose name it starts with
            assert scrape.total("coding_agent_unpriced_tokens_total", agent="codex",
                                model="gpt-5.1-codex-mini") == tokens
            assert not scrape.series(LEDGER_COST)
            assert agents["codex"]["unpriced_models"] == ["gpt-5.1-codex-mini"]
    finally:
        running.stop()


def test_agents_compared_per_request_for_insights(bridge: RunningBridge) -> None:
    replay(bridge, CLAUDE / "t7_write_edit_acceptEdits")
    replay_recorded(bridge, OTHER / "codex-0.169.0" / "two-tools-grpc")
    store = bridge.bridge.store
    assert agent_cost_insights(store, min_requests=4) == []  # Codex made 3: no comparison yet
    (insight,) = agent_cost_insights(store, min_requests=1)
    rows = {row["agent"]: row for row in bridge.get_json("/summary")["agents"]["agents"]}
    claude, codex = rows["claude-code"], rows["codex"]
    assert claude["cost_per_request_usd"] > codex["cost_per_request_usd"]
    assert insight["scope"] == {"agent": "claude-code"}
    assert insight["potential_savings_usd"] == pytest.approx(
        (claude["cost_per_request_usd"] - codex["cost_per_request_usd"]) * claude["requests"])
    assert f"${codex['cost_per_request_usd']:,.4f} on codex (3 requests)" in insight["message"]


def test_readme_shows_what_env_prints_for_each_agent() -> None:
    section = (FIXTURES.parent / "README.md").read_text().split("\n## Connecting Gemini CLI and Codex\n", 1)[1]
    sh, toml = section.split("```sh\n")[2].split("```")[0], section.split("```toml\n")[1].split("```")[0]
    printed = agent_setup("gemini", "grpc", "http://127.0.0.1:4317", None, "bash").splitlines()
    assert [line.split("  #")[0].rstrip() for line in sh.splitlines()[:len(printed)]] == printed
    printed = agent_setup("codex", "grpc", "http://127.0.0.1:4317", None, "bash").splitlines()
    assert toml.splitlines() == printed[1:]  # the first line says which file


def test_cached_tokens_without_their_input_are_refused_and_counted_never_negative() -> None:
    # No recorded agent sends these apart; if one did, the store refuses the negative input and says so.
    codex = FamilyMeta("codex_turn_token_usage", Kind.HISTOGRAM, "")
    labels = (("model", "gpt-5.1-codex"), ("token_type", "cached_input"))
    store = Store()
    derived = Ledger(PRICES).derive([Applied(codex, labels, 300.0, 1, 10**18)], 0.0)
    result = store.apply(derived)
    assert result.rejected == {"negative_delta": 2}  # the input tokens, and the cost priced from them
    assert store.value("coding_agent_tokens_total", (("agent", "codex"), ("model", "gpt-5.1-codex"),
                                                     ("type", "cache_read"))) == 300.0

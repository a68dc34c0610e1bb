"""Model names normalise to the priced model, and the table reproduces Claude Code's own costs."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otlp_bridge.derive.economics import TokenTotals, cache_savings, cost_at
from otlp_bridge.derive.pricing import Price, PriceTable, normalise
from otlp_bridge.translate.events import Event, translate_events
from otlp_bridge.translate.metrics import LabelPolicy
from tests.support import FIXTURES, capture_requests


@pytest.mark.parametrize(("model", "expected"), [
    ("claude-opus-4-8[1m]", "claude-opus-4-8"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
    ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
    ("claude-opus-4-1@20250805", "claude-opus-4-1"),
    ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
    ("Claude-Haiku-4-5", "claude-haiku-4-5"),
])
def test_normalise(model: str, expected: str) -> None:
    assert normalise(model) == expected


def test_lookup_prefers_the_longest_known_name_and_refuses_to_guess() -> None:
    table = PriceTable()
    assert table.price("claude-opus-4-1-20250805") == table.prices["claude-opus-4-1"]
    assert table.price("claude-opus-4-20250514") == table.prices["claude-opus-4"]
    assert table.price("gpt-0-unreleased") is None
    assert table.price("claude-unknown-9") is None


def test_overrides_replace_the_table() -> None:
    table = PriceTable({"claude-haiku-4-5-20251001": Price(2, 10, 2.5, 4, 0.2)})
    assert table.price("claude-haiku-4-5").input == 2  # type: ignore[union-attr]


def _api_requests() -> list[tuple[str, TokenTotals, float]]:
    out = []
    runs = [*sorted(p for p in (FIXTURES / "claude-code-2.1.330").iterdir() if p.is_dir()),
            FIXTURES / "claude-code-2.1.197" / "t17_v2.1.197_write_accept",
            *sorted(p / "otlp" for p in (FIXTURES / "claude-code-2.1.330-transcripts").iterdir() if p.is_dir())]
    for run in runs:
        for req in capture_requests(run):
            if req.signal != "logs" or ".json" in req.path.name:
                continue
            request = ExportLogsServiceRequest.FromString(req.decoded_body)
            for event in (obs.origin for obs in translate_events(request, LabelPolicy())):
                assert isinstance(event, Event)
                if event.name == "api_request":
                    tokens = TokenTotals(event.number("input_tokens") or 0, event.number("output_tokens") or 0,
                                         event.number("cache_read_tokens") or 0,
                                         event.number("cache_creation_tokens") or 0,
                                         event.number("cache_creation_1h_tokens") or 0)
                    out.append((str(event.get("model")), tokens, event.number("cost_usd") or 0.0))
    return out


def test_table_reproduces_every_cost_claude_code_reported() -> None:
    table = PriceTable()
    requests = _api_requests()
    assert {model for model, _, _ in requests} == {"claude-opus-5-5", "claude-haiku-4-5", "claude-opus-4-8",
                                                   "claude-opus-4-5", "claude-sonnet-4-5"}
    assert any(tokens.cache_creation_1h for _, tokens, _ in requests)  # s4 writes the cache for an hour
    for model, tokens, cost in requests:
        assert cost_at(tokens, table.price(model)) == pytest.approx(cost, rel=1e-12), model  # type: ignore[arg-type]


def test_cache_savings_by_hand() -> None:
    # t7 on claude-opus-5-5: 13701 cache reads at 4 − 0.2, less 2670 writes at 5 − 4, per million
    tokens = TokenTotals(input=369, output=126, cache_read=13701, cache_creation=2670)
    price = PriceTable().price("claude-opus-5-5")
    assert cache_savings(tokens, price) == pytest.approx((13701 * 3.8 - 2670 * 1.0) / 1e6, rel=1e-12)  # type: ignore[arg-type]
    assert tokens.cache_hit_ratio == pytest.approx(13701 / (369 + 13701 + 2670))
    # writes that are never read cost more than they save
    assert cache_savings(TokenTotals(cache_creation=1000), price) == pytest.approx(-1000 * 1.0 / 1e6)  # type: ignore[arg-type]

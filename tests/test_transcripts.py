"""Claude Code transcripts against the telemetry and the API truth of the same real sessions."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from otlp_bridge.decode import Signal, decode_protobuf
from otlp_bridge.derive.pricing import PriceTable
from otlp_bridge.series import Temporality
from otlp_bridge.transcripts import openmetrics
from otlp_bridge.transcripts.history import History, cost_of, tokens_by_type
from otlp_bridge.transcripts.ledger import Ledger
from otlp_bridge.transcripts.progress import Progress
from otlp_bridge.transcripts.reader import MAX_LINE_BYTES, ReadStats, Usage, read_usage
from otlp_bridge.translate.metrics import LabelPolicy, translate_metrics
from tests.support import FIXTURES

CAPTURES = FIXTURES / "claude-code-2.1.330-transcripts"
SESSIONS = sorted(p for p in CAPTURES.iterdir() if p.is_dir())
API_TYPES = {"input_tokens": "input", "output_tokens": "output", "cache_read_input_tokens": "cacheRead",
             "cache_creation_input_tokens": "cacheCreation"}

Tokens = dict[tuple[str, str], float]  # (model, type) → tokens


def read(*paths: Path, max_line_bytes: int = MAX_LINE_BYTES) -> tuple[ReadStats, Ledger]:
    stats, ledger = ReadStats(), Ledger()
    for usage in read_usage(paths, stats, max_line_bytes=max_line_bytes):
        ledger.add(usage)
    return stats, ledger


def session_id(session: Path) -> str:
    return next((session / "transcripts").rglob("*.jsonl")).stem


def transcript_tokens(records: list[Usage]) -> Tokens:
    out: Counter[tuple[str, str]] = Counter()
    for usage in records:
        out.update({(usage.model, kind): n for kind, n in tokens_by_type(usage).items()})
    return dict(out)


def telemetry(session: Path) -> tuple[Tokens, dict[str, float]]:
    """Tokens and cost_usd the CLI exported for the session, through the bridge's decode + translate."""
    tokens: dict[tuple[str, str], float] = defaultdict(float)
    cost: dict[str, float] = defaultdict(float)
    for body in sorted((session / "otlp").glob("*_metrics.pb")):
        translation = translate_metrics(decode_protobuf(Signal.METRICS, body.read_bytes()), LabelPolicy())
        for point in translation.observations:
            labels = dict(point.labels)
            assert point.temporality is Temporality.DELTA  # so the values are the increases
            assert labels["session_id"] == session_id(session)
            if point.family.name == "claude_code_token_usage_tokens_total":
                tokens[labels["model"], labels["type"]] += point.value  # type: ignore[operator]
            elif point.family.name == "claude_code_cost_usage_USD_total":
                cost[labels["model"]] += point.value  # type: ignore[operator]
    return dict(tokens), dict(cost)


def api_truth() -> dict[str, Tokens]:
    """Per session, the usage the stand-in API answered (stream errors gave none)."""
    out: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for line in (CAPTURES / "api_requests.jsonl").read_text().splitlines():
        request = json.loads(line)
        if request["decision"] == "stream_error":
            assert "usage" not in request
            continue
        out[request["session"]].update({(request["model"], kind): request["usage"][key]
                                        for key, kind in API_TYPES.items()})
    return {session: dict(tokens) for session, tokens in out.items()}


@pytest.fixture(scope="module")
def imported() -> tuple[ReadStats, Ledger]:
    return read(*(s / "transcripts" for s in SESSIONS))


@pytest.mark.parametrize("session", SESSIONS, ids=lambda p: p.name)
def test_tokens_per_session_equal_telemetry_and_api(session: Path, imported: tuple[ReadStats, Ledger]) -> None:
    sid = session_id(session)
    mine = transcript_tokens([u for u in imported[1].records if u.session == sid])
    exported, _ = telemetry(session)
    assert mine == exported
    assert mine == api_truth()[sid]


@pytest.mark.parametrize("session", SESSIONS, ids=lambda p: p.name)
def test_cost_per_session_equals_telemetry(session: Path, imported: tuple[ReadStats, Ledger]) -> None:
    sid, prices = session_id(session), PriceTable()
    mine: dict[str, float] = defaultdict(float)
    for usage in imported[1].records:
        if usage.session == sid:
            price = prices.price(usage.model)
            assert price is not None
            mine[usage.model] += cost_of(usage, price)
    _, exported = telemetry(session)
    assert mine.keys() == exported.keys()
    for model, cost in exported.items():
        assert mine[model] == pytest.approx(cost, rel=1e-12, abs=1e-15)


def test_counts_each_response_once(imported: tuple[ReadStats, Ledger]) -> None:
    stats, ledger = imported
    assert stats.files == len(SESSIONS)
    assert not stats.malformed
    assert not stats.unreadable_files
    # s2's one answer with three parallel tool calls is written on three lines
    assert stats.usage_lines == 15
    assert (len(ledger.records), ledger.duplicates) == (13, 2)
    requests = sum(1 for line in (CAPTURES / "api_requests.jsonl").read_text().splitlines()
                   if json.loads(line)["decision"] != "stream_error")
    assert len(ledger.records) == requests


def test_cache_write_durations(imported: tuple[ReadStats, Ledger]) -> None:
    by_session = {u.session: u for u in imported[1].records}
    one_hour = by_session[session_id(CAPTURES / "s4_opus45_cache1h")]
    assert (one_hour.cache_write_5m, one_hour.cache_write_1h) == (0, 890)
    # The API gave no breakdown; the transcript says 0 + 0, yet 890 tokens were written (at 5 minutes,
    # which is what the CLI priced: its cost_usd is matched above).
    no_breakdown = by_session[session_id(CAPTURES / "s6_sonnet_no_breakdown")]
    assert (no_breakdown.cache_write_5m, no_breakdown.cache_write_1h, no_breakdown.cache_creation) == (890, 0, 890)


def _assistant_lines(session: str) -> list[str]:
    path = next((CAPTURES / session / "transcripts").rglob("*.jsonl"))
    return [line for line in path.read_text().splitlines() if json.loads(line).get("type") == "assistant"]


def test_copies_in_resumed_and_forked_files_count_once(tmp_path: Path) -> None:
    source = next((CAPTURES / "s1_opus_tools_vary" / "transcripts").rglob("*.jsonl"))
    fork = tmp_path / "proj" / "fork.jsonl"
    fork.parent.mkdir()
    lines = []
    for line in _assistant_lines("s1_opus_tools_vary"):
        record = json.loads(line)
        record["sessionId"] = "forked"
        record.pop("requestId")  # a copy missing one of the two ids is still the same response
        lines.append(json.dumps(record))
    fork.write_text("\n".join(lines) + "\n")
    _stats, ledger = read(source, fork)
    single = read(source)[1]
    assert transcript_tokens(ledger.records) == transcript_tokens(single.records)
    assert (len(ledger.records), ledger.duplicates) == (4, 4)
    assert {u.session for u in ledger.records} == {"ad05189b-cb60-461e-8f0f-fa8ea0ff8820"}


def test_a_later_copy_with_more_output_wins() -> None:
    first = Usage("m", "r", "claude-opus-4-5", 1.0, "s", "p", 10, 1, 0, 0, 0)
    final = Usage("m", "r", "claude-opus-4-5", 2.0, "s2", "p", 10, 42, 0, 0, 0)
    ledger = Ledger()
    assert ledger.add(first)
    assert not ledger.add(final)
    assert (ledger.records[0].output, ledger.records[0].time, ledger.records[0].session) == (42, 1.0, "s")


def test_bad_lines_are_counted_never_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = _assistant_lines("s3_sonnet_vary")[0]
    record = json.loads(good)

    def variant(**usage: object) -> str:
        changed = json.loads(good)
        changed["message"]["usage"].update(usage)
        return json.dumps(changed)

    no_time = dict(record, timestamp="yesterday")
    lines = [good, "{not json", "[1, 2]", "", variant(input_tokens="many"), variant(output_tokens=-5),
             variant(cache_read_input_tokens=1e300), json.dumps(no_time),
             json.dumps(dict(record, message=dict(record["message"], usage=7))),
             "x" * 5000, "not UTF-8", good[: len(good) // 2]]  # the last: a line cut by a crash
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(line.encode() for line in lines[:-2]) + b"\n\xff\xfe\n" + lines[-1].encode())
    (tmp_path / "gone.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    stats, ledger = read(tmp_path, max_line_bytes=4096)
    assert len(ledger.records) == 1
    assert ledger.records[0].input == 149
    assert stats.malformed == Counter({
        "not JSON": 3, "not an object": 1, "input_tokens is not a number": 1, "output_tokens out of range": 1,
        "cache_read_input_tokens out of range": 1, "bad timestamp": 1, "usage is not an object": 1,
        "line too long": 1})
    assert (stats.files, stats.unreadable_files) == (1, 1)
    assert "bad.jsonl:2: skipped line (not JSON)" in caplog.text


def test_unknown_model_is_counted_not_priced(tmp_path: Path) -> None:
    record = json.loads(_assistant_lines("s3_sonnet_vary")[0])
    record["message"]["model"] = "claude-future-9"
    (tmp_path / "a.jsonl").write_text(json.dumps(record) + "\n" + _assistant_lines("s4_opus45_cache1h")[0] + "\n")
    history = History(PriceTable())
    history.extend(read(tmp_path)[1].records)
    assert history.unpriced == Counter({"claude-future-9": 1})
    assert history.by_model["claude-future-9"].tokens["input"] == 149
    text = "".join(openmetrics.render(history))
    assert 'claude_code_token_usage_tokens_total{model="claude-future-9"' in text
    assert 'claude_code_cost_usage_USD_total{model="claude-future-9"' not in text  # never guessed, never $0
    assert history.total().cost_usd == pytest.approx(0.0128485)


def test_progress_bar_only_on_a_terminal() -> None:
    quiet = io.StringIO()
    Progress(100, quiet).advance(100)
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    bar = Progress(200, shown, enabled=True, clock=iter(range(0, 100)).__next__)
    bar.advance(50)
    bar.advance(150)
    bar.close()
    assert " 25.0%" in shown.getvalue()
    assert "100.0%" in shown.getvalue()
    assert shown.getvalue().endswith("\n")


def test_import_command_summary_and_openmetrics(tmp_path: Path) -> None:
    target = tmp_path / "history.om"
    result = subprocess.run([sys.executable, "-m", "otlp_bridge", "import", str(CAPTURES), "--openmetrics",
                             str(target), "--label", "user_id=u1", "--step", "day"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no progress bar
    out = result.stdout
    assert "15 assistant lines with usage -> 13 responses (2 duplicates skipped" in out
    assert "malformed lines skipped: 0" in out
    assert "unknown models (tokens counted, no cost): none" in out
    assert "total                               13        1,603          487         63,253         12,341" in out
    text = target.read_text()
    assert text.endswith("# EOF\n")
    assert 'source="transcripts",type="cacheCreation",user_id="u1"} 7690 ' in text
    # s1–s4 answered before 08:11:50, s5–s7 after
    early = subprocess.run([sys.executable, "-m", "otlp_bridge", "import", str(CAPTURES), "--before",
                            "2026-11-23T08:11:50"], capture_output=True, text=True, timeout=60, check=False)
    assert "total                                8          988          277         40,418" in early.stdout
    assert "left out (at or after --before): 5 responses" in early.stdout
    bad = subprocess.run([sys.executable, "-m", "otlp_bridge", "import", str(tmp_path / "missing"),
                          "--label", "model=x"], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert "--label: 'model' is not a label name an import may set" in bad.stderr


def _promtool(*args: str) -> None:
    from tests.prometheus_server import binary  # noqa: PLC0415 - skips when Prometheus is absent

    subprocess.run([binary("promtool"), *args], check=True, capture_output=True, timeout=120)


def test_backfill_into_a_real_prometheus(tmp_path: Path) -> None:
    from tests.prometheus_server import Prometheus  # noqa: PLC0415

    history = History(PriceTable())
    history.extend(read(*(s / "transcripts" for s in SESSIONS))[1].records)
    exposition = tmp_path / "history.om"
    with exposition.open("w") as out:
        openmetrics.write(history, out)
    _promtool("tsdb", "create-blocks-from", "openmetrics", str(exposition), str(tmp_path / "data"))
    prometheus = Prometheus(tmp_path, targets=[])
    try:
        end = int(history.total().last) + 1
        tokens = {(r["metric"]["model"], r["metric"]["type"]): float(r["value"][1]) for r in prometheus.query(
            f"sum by (model, type) (last_over_time(claude_code_token_usage_tokens_total[1h] @ {end}))")}
        truth: Counter[tuple[str, str]] = Counter()
        for session in api_truth().values():
            truth.update(session)
        assert tokens == dict(truth)
        cost = prometheus.query(f"sum(last_over_time(claude_code_cost_usage_USD_total[1h] @ {end}))")
        telemetry_cost = sum(sum(telemetry(s)[1].values()) for s in SESSIONS)
        assert float(cost[0]["value"][1]) == pytest.approx(telemetry_cost, rel=1e-12)
        # The samples sit when the responses were made, not when they were imported.
        before = int(history.total().first) - 1
        assert prometheus.query(f"last_over_time(claude_code_token_usage_tokens_total[1h] @ {before})") == []
    finally:
        prometheus.stop()


def test_openmetrics_parses_with_awkward_labels(tmp_path: Path) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families  # noqa: PLC0415

    record = json.loads(_assistant_lines("s3_sonnet_vary")[0])
    record["cwd"] = 'C:\\Users\\o"brien\nproject'
    (tmp_path / "a.jsonl").write_text(json.dumps(record) + "\n")
    history = History(PriceTable(), step_seconds=86400)
    history.extend(read(tmp_path)[1].records)
    families = {f.name: f for f in text_string_to_metric_families("".join(openmetrics.render(history)))}
    samples = [s for s in families["claude_code_token_usage_tokens"].samples if s.labels["type"] == "input"]
    assert [(s.value, s.labels["project"]) for s in samples] == [(0, record["cwd"]), (149, record["cwd"])]
    assert samples[0].timestamp < samples[1].timestamp
    (cost,) = [s.value for s in families["claude_code_cost_usage_USD"].samples if s.value]
    assert cost == pytest.approx(0.00686535)

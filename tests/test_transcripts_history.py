"""`otlp-bridge import --state-dir`: transcripts fill a bridge's period history before its telemetry,
never a period twice, and never its live totals."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from otlp_bridge.config import Settings
from otlp_bridge.transcripts.endpoint import is_loopback
from tests.support import RunningBridge, replay, settings_for_test
from tests.test_transcripts import CAPTURES

USER = "49d1cd1bc72fcbdc4ac79886c24d5da7bd7971500f35db260219fa739575363c"  # s6's user.id
NOW = 1795421519.0 + 60  # a minute after the last capture (Monday 2026-11-23, 08:12 UTC)
# What Claude Code itself reported (telemetry cost_usd) per session.
COST = {"s1_opus_tools_vary": 0.028932, "s2_haiku_parallel_tools": 0.0038044, "s3_sonnet_vary": 0.00686535,
        "s4_opus45_cache1h": 0.0128485, "s5_write_edit": 0.0200862, "s6_sonnet_no_breakdown": 0.0057066,
        "s7_stream_error": 0.0066954}
LIVE = ("s5_write_edit", "s6_sonnet_no_breakdown", "s7_stream_error")  # sessions with telemetry on
OLD = ("s1_opus_tools_vary", "s2_haiku_parallel_tools", "s3_sonnet_vary", "s4_opus45_cache1h")


def older_copy(session: str, into: Path, days: int) -> Path:
    """The session's transcript as if it had happened `days` earlier (other ids: other responses)."""
    source = next((CAPTURES / session / "transcripts").rglob("*.jsonl"))
    target = into / f"{session}-{days}d" / source.name
    target.parent.mkdir(parents=True)
    lines = []
    for line in source.read_text().splitlines():
        record = json.loads(line)
        if record.get("type") == "assistant":
            record["timestamp"] = (datetime.fromisoformat(record["timestamp"]) - timedelta(days=days)).isoformat()
            record["message"]["id"] += f"-{days}d"
            record["requestId"] += f"-{days}d"
        lines.append(json.dumps(record))
    target.write_text("\n".join(lines) + "\n")
    return target


def settings(tmp: Path) -> Settings:
    return settings_for_test(tmp, budgets=[{"name": "monthly", "period": "month", "limit_usd": 1.0}])


def bridge_with_telemetry(tmp: Path) -> None:
    """A bridge that saw the live sessions' telemetry, stopped: its state is on disk."""
    bridge = RunningBridge(settings(tmp), clock=lambda: NOW)
    for session in LIVE:
        replay(bridge, CAPTURES / session / "otlp")
    bridge.stop()


def run_import(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otlp_bridge", "import", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def import_into(tmp: Path, *paths: Path, user: str = USER) -> str:
    result = run_import(*map(str, paths), "--state-dir", str(tmp / "state"), "--label", f"user_id={user}")
    assert result.returncode == 0, result.stderr
    return result.stdout


def observed(bridge: RunningBridge) -> tuple[dict[str, Any], dict[str, float]]:
    """/summary, and the live cost counters (Claude Code's and the cross-agent ledger's) from /metrics."""
    scrape = bridge.scrape()
    return bridge.get_json("/summary"), {name: scrape.total(name) for name in (
        "claude_code_cost_usage_USD_total", "coding_agent_cost_usd_total")}


def summary_and_totals(tmp: Path) -> tuple[dict[str, Any], dict[str, float]]:
    bridge = RunningBridge(settings(tmp), clock=lambda: NOW)
    try:
        return observed(bridge)
    finally:
        bridge.stop()


def test_history_gains_the_days_before_telemetry_and_nothing_telemetry_covers(tmp_path: Path) -> None:
    bridge_with_telemetry(tmp_path)
    before, live_total = summary_and_totals(tmp_path)
    live = sum(COST[s] for s in LIVE)
    assert before["cost_usd"]["this_month"] == pytest.approx(live)
    # Friday the week before: s1–s4 without telemetry; and every real session, telemetry on or not,
    # inside the hour the telemetry starts in.
    old = [older_copy(s, tmp_path / "transcripts", days=3) for s in OLD]
    out = import_into(tmp_path, CAPTURES, *old)
    assert "history: 8 responses in " in out
    assert "13 responses in hours telemetry covers (from 2026-11-23 08:00 local time)" in out
    after, totals = summary_and_totals(tmp_path)
    cost = after["cost_usd"]
    assert cost["this_month"] == pytest.approx(live + sum(COST[s] for s in OLD), rel=1e-9)
    assert cost["this_week"] == pytest.approx(live, rel=1e-9)  # Monday: the imported Friday is last week
    assert cost["today"] == pytest.approx(live, rel=1e-9)
    assert cost["all_time"] == pytest.approx(live, rel=1e-9)  # history only: the counters never jump
    assert totals == pytest.approx(live_total)
    assert after["budgets"][0]["spent_usd"] == pytest.approx(cost["this_month"], rel=1e-9)  # budgets see it
    # Again, and with more transcripts in the same hours: nothing is counted twice.
    again = import_into(tmp_path, CAPTURES, *old)
    assert "history: 8 responses in 0 new or grown hourly buckets" in again
    assert summary_and_totals(tmp_path)[0]["cost_usd"]["this_month"] == pytest.approx(cost["this_month"], rel=1e-9)


def test_a_bucket_grows_by_what_is_new(tmp_path: Path) -> None:
    bridge_with_telemetry(tmp_path)
    s5 = older_copy("s5_write_edit", tmp_path / "t", days=2)
    s7 = older_copy("s7_stream_error", tmp_path / "t", days=2)  # same model, project and hour as s5
    import_into(tmp_path, s5)
    out = import_into(tmp_path, s5, s7)
    # s7 lands in s5's series and hour: each of their buckets (cost, four token types, requests) grows
    assert "history: 4 responses in 6 new or grown hourly buckets" in out
    month = summary_and_totals(tmp_path)[0]["cost_usd"]["this_month"]
    assert month == pytest.approx(sum(COST[s] for s in LIVE) + COST["s5_write_edit"] + COST["s7_stream_error"],
                                  rel=1e-9)


def test_the_rule_is_per_user(tmp_path: Path) -> None:
    bridge_with_telemetry(tmp_path)
    out = import_into(tmp_path, CAPTURES, user="someone-else")
    assert "history: 13 responses in " in out
    assert "0 responses in hours telemetry covers (none for this user)" in out
    month = summary_and_totals(tmp_path)[0]["cost_usd"]["this_month"]
    assert month == pytest.approx(sum(COST[s] for s in LIVE) + sum(COST.values()), rel=1e-9)


def test_a_missing_state_is_a_clear_error(tmp_path: Path) -> None:
    result = run_import(str(CAPTURES), "--state-dir", str(tmp_path / "nothing"))
    assert result.returncode == 1
    assert "no bridge state there" in result.stderr
    assert not (tmp_path / "nothing").exists()


def test_a_running_bridge_keeps_its_state_to_itself(tmp_path: Path) -> None:
    bridge = RunningBridge(settings(tmp_path), clock=lambda: NOW)
    try:
        result = run_import(str(CAPTURES), "--state-dir", str(tmp_path / "state"))
    finally:
        bridge.stop()
    assert result.returncode == 1
    assert "in use by another otlp-bridge" in result.stderr


def test_into_a_running_bridge(tmp_path: Path) -> None:
    bridge = RunningBridge(settings(tmp_path), clock=lambda: NOW)
    try:
        for session in LIVE:
            replay(bridge, CAPTURES / session / "otlp")
        before, totals = observed(bridge)
        url = f"http://127.0.0.1:{bridge.ports.metrics}"
        old = [older_copy(s, tmp_path / "transcripts", days=3) for s in OLD]
        first = run_import(str(CAPTURES), *map(str, old), "--to", url, "--label", f"user_id={USER}")
        assert first.returncode == 0, first.stderr
        assert "history: 8 responses in " in first.stdout
        assert "13 responses in hours telemetry covers" in first.stdout
        after, totals_after = observed(bridge)
        expected = before["cost_usd"]["this_month"] + sum(COST[s] for s in OLD)
        assert after["cost_usd"]["this_month"] == pytest.approx(expected, rel=1e-9)
        assert after["budgets"][0]["spent_usd"] == pytest.approx(expected, rel=1e-9)
        assert totals_after == pytest.approx(totals)  # history only
        again = run_import(str(CAPTURES), *map(str, old), "--to", url + "/", "--label", f"user_id={USER}")
        assert "history: 8 responses in 0 new or grown hourly buckets" in again.stdout
    finally:
        bridge.stop()
    # acknowledged means durable
    assert summary_and_totals(tmp_path)[0]["cost_usd"]["this_month"] == pytest.approx(expected, rel=1e-9)


def test_into_a_running_bridge_with_credentials_and_bad_bodies(tmp_path: Path) -> None:
    guarded = settings_for_test(tmp_path, auth={"metrics": {"bearer_token": "s3cret"}})
    bridge = RunningBridge(guarded, clock=lambda: NOW)
    try:
        url = f"http://127.0.0.1:{bridge.ports.metrics}"
        refused = run_import(str(CAPTURES), "--to", url)
        assert refused.returncode == 1
        assert "HTTP 401" in refused.stderr
        allowed = run_import(str(CAPTURES), "--to", url, "--token", "s3cret")
        assert allowed.returncode == 0, allowed.stderr
        assert "history: 13 responses in " in allowed.stdout
        for body, why in (
            (b"{not json", "bad import"),
            (b'{"usage": [[1, "m", "p", 1, -5, 0, 0, 0, 0]]}', "usage[0] tokens"),
            (b'{"usage": [[9e18, "m", "p", 1, 0, 0, 0, 0, 0]]}', "not in the future"),
            (b'{"labels": {"model": "x"}, "usage": []}', "'model' is not a label name"),
        ):
            request = urllib.request.Request(url + "/import/transcripts", data=body, method="POST",
                                             headers={"Authorization": "Bearer s3cret"})
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=10)
            assert caught.value.code == 400
            assert why in caught.value.read().decode()
    finally:
        bridge.stop()


def test_without_credentials_only_loopback_may_import() -> None:
    assert [is_loopback(a) for a in ("127.0.0.1", "::1", "127.8.9.10", "10.0.0.7", "fe80::1%eth0", None, "x")] == [
        True, True, True, False, False, False, False]

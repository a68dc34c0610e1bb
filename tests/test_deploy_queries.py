"""Every query we ship, proven against a real Prometheus scraping bridges fed with real captures:
the dashboard's panels and variables, the recording and alerting rules, and fleet totals across
two replicas."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prometheus_server import Prometheus, binary, free_port, wait_ready
from tests.support import CLAUDE, RunningBridge, api_requests, capture_requests, replay, settings_for_test

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "claude-code.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
BUDGETS = [{"name": "monthly", "period": "month", "limit_usd": 0.02},
           {"name": "platform", "period": "day", "limit_usd": 5.0, "match": {"team": "platform"}}]
# Token identities stamp `team`, the label the dashboard's Team variable and team budgets use.
TOKENS = {"platform": "token-of-team-platform", "research": "token-of-team-research"}
AUTH = {"tokens": [{"token": token, "labels": {"team": team}} for team, token in TOKENS.items()]}
NOW = 1795382900.0  # the captures' own time, so budget periods hold their spend
WAVE_1 = ("t1_http_protobuf_sayhi", "t3_grpc", "t18_git_commit", "t19_gh_pr", "t6_bash_allowed")
WAVE_2 = ("t7_write_edit_acceptEdits", "t10_fail_reject_details", "t12_api_error_400", "t13_api_error_529",
          "t20_model_haiku", "t8_bash_sleep_multi_export")
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "${datasource}": "",
                     "$user": ".*", "$team": ".*", "$model": ".*"}


def _dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p.get("targets")]


def _grafana(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


def _rule_exprs() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(rule.get("record") or rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


def _replay_as(bridge: RunningBridge, run: Path, team: str) -> None:
    """A run's requests sent with a team's token, over the transport each was recorded on."""
    bearer = f"Bearer {TOKENS[team]}"
    for req in capture_requests(run):
        if req.transport == "grpc":
            bridge.grpc_export(req.signal, req.body, gzip_="gzip" in run.name, metadata=(("authorization", bearer),))
        else:
            status, body, _ = bridge.post(req.http_path, req.body, {**req.http_headers, "Authorization": bearer})
            assert status == 200, (req.path, status, body)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("deploy")
    bridge = RunningBridge(settings_for_test(tmp, budgets=BUDGETS, auth=AUTH), clock=lambda: NOW)
    prometheus = Prometheus(tmp, [f"127.0.0.1:{bridge.ports.metrics}"], rule_files=(RULES,))
    try:
        for run in WAVE_1:
            _replay_as(bridge, CLAUDE / run, "platform")
        time.sleep(3)  # a few scrapes in between, so rates over the window are not zero
        for run in WAVE_2:
            _replay_as(bridge, CLAUDE / run, "research")
        prometheus.wait_for("claude_code_lines_of_code_count_total")
        prometheus.wait_for("claude_code:budget_used:ratio")
        time.sleep(2)
        yield prometheus
    finally:
        prometheus.stop()
        bridge.stop()


@pytest.mark.parametrize("panel", _dashboard_panels(), ids=lambda p: p["title"])
def test_every_dashboard_panel_query_returns_data(fed: Prometheus, panel: dict[str, Any]) -> None:
    for target in panel["targets"]:
        result = fed.query(_grafana(target["expr"]))
        assert result, f"{panel['title']}: {target['expr']} returned nothing"


def test_dashboard_variables_have_values(fed: Prometheus) -> None:
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    queries = [v for v in variables if v["type"] == "query"]
    assert {v["name"] for v in queries} == {"user", "team", "model"}
    for variable in queries:
        metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["definition"]).groups()  # type: ignore[union-attr]
        assert fed.label_values(label, metric), variable["name"]
    assert {v["name"] for v in variables if v["type"] == "datasource"} == {"datasource"}
    (team,) = [v for v in queries if v["name"] == "team"]
    assert set(fed.label_values("team", "claude_code_cost_usage_USD_total")) == set(TOKENS), team["definition"]
    assert "__inputs" not in json.loads(DASHBOARD.read_text()), "no data source input nothing uses"


def test_range_totals_equal_the_exact_totals(fed: Prometheus) -> None:
    """Nothing existed an hour before these captures, so a range total over 1h is the whole total,
    including series that appeared with their whole value (where increase() would read less)."""
    panels = {p["title"]: p for p in _dashboard_panels()}
    checks = {("Spend", 0): "sum(claude_code_cost_usage_USD_total)",
              ("Tokens sent", 0): 'sum(claude_code_token_usage_tokens_total{type=~"input|cacheRead|cacheCreation"})'}
    for (title, index), truth in checks.items():
        (shown,) = fed.query(_grafana(panels[title]["targets"][index]["expr"]))
        (exact,) = fed.query(truth)
        assert float(shown["value"][1]) == pytest.approx(float(exact["value"][1]), rel=1e-12), title
        assert float(exact["value"][1]) > 0


def test_team_filter_narrows_every_filtered_panel(fed: Prometheus) -> None:
    """With one team chosen, a panel that filters on it shows that team's part, not everyone's."""
    narrowed = 0
    for panel in _dashboard_panels():
        for target in panel["targets"]:
            if '$team"' not in target["expr"] or "histogram_quantile" in target["expr"]:
                continue
            everyone = sum(float(r["value"][1]) for r in fed.query(_grafana(target["expr"])))
            platform = sum(float(r["value"][1]) for r in fed.query(_grafana(target["expr"].replace(
                '"$team"', '"platform"'))))
            assert platform <= everyone + 1e-9, (panel["title"], target["expr"])
            narrowed += platform < everyone
    assert narrowed >= 5, "the research team's wave must be filtered out of several panels"


def test_dashboard_covers_every_section() -> None:
    rows = [p["title"] for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] == "row"]
    assert rows == ["Token flow", "Cost and budget", "Activity", "Tools and commands", "API health",
                    "Users and devices", "Agents", "Plan windows", "Bridge health"]


@pytest.mark.parametrize(("name", "expr"), _rule_exprs(), ids=[name for name, _ in _rule_exprs()])
def test_every_rule_expression_evaluates(fed: Prometheus, name: str, expr: str) -> None:
    fed.query(expr)  # raises on an error answer


def test_recording_rules_have_data(fed: Prometheus) -> None:
    for name, _ in _rule_exprs():
        if ":" in name:
            assert fed.query(name), name
    (used,) = fed.query('claude_code:budget_used:ratio{budget="monthly"}')
    assert float(used["value"][1]) > 1  # these captures spend more than the 0.02 USD limit


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = binary("promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run([promtool, "test", "rules", "rules_test.yaml"], cwd=RULES.parent, capture_output=True,
                          text=True, timeout=120, check=False)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    tested = set(re.findall(r"alertname: (\w+)", (RULES.parent / "rules_test.yaml").read_text()))
    assert tested == {name for name, _ in _rule_exprs() if ":" not in name}, "every alert has a unit test"


def test_two_replicas_fleet_totals_equal_what_was_sent(tmp_path: Path) -> None:
    bridges = [RunningBridge(settings_for_test(tmp_path / name, budgets=BUDGETS), clock=lambda: NOW)
               for name in ("a", "b")]
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{b.ports.metrics}" for b in bridges], rule_files=(RULES,))
    try:
        runs = [*WAVE_1, *WAVE_2]
        for i, run in enumerate(runs):  # traffic split between the replicas
            replay(bridges[i % 2], CLAUDE / run)
        per_replica = [b.get_json("/summary") for b in bridges]
        assert all(s["cost_usd"]["all_time"] > 0 for s in per_replica)
        sent_cost = sum(s["cost_usd"]["all_time"] for s in per_replica)
        # each successful request costs 0.0066954 on opus and 0.0019022 on haiku (t20 alone)
        opus = sum(api_requests(CLAUDE / run) for run in runs if run != "t20_model_haiku")
        assert sent_cost == pytest.approx(0.0066954 * opus + 0.0019022, rel=1e-12)
        prometheus.wait_for_value("claude_code:cost_usd:sum", sum(
            s["cost_usd"]["all_time"] for s in per_replica), timeout=30)
        reads = 4567 * (opus + 1)
        prometheus.wait_for_value('claude_code:tokens:sum_by_type{type="cacheRead"}', reads)
        spent = sum(b["spent_usd"] for s in per_replica for b in s["budgets"] if b["name"] == "monthly")
        assert spent == pytest.approx(sent_cost, rel=1e-12)  # the month of NOW holds every capture
        (fleet,) = prometheus.wait_for('claude_code:budget_spent_usd:sum{budget="monthly"}')
        assert float(fleet["value"][1]) == pytest.approx(spent, rel=1e-12)
        assert {float(r["value"][1]) for r in prometheus.query('claude_code_budget_spent_usd{budget="monthly"}')} \
            != {spent}, "each replica alone sees only its share"
    finally:
        prometheus.stop()
        for bridge in bridges:
            bridge.stop()


def test_budget_alert_reaches_alertmanager(tmp_path: Path) -> None:
    """The compose stack's path, with real servers: bridge → Prometheus (our rules) → Alertmanager
    (deploy/compose/alertmanager.yml). `for:` is shortened so the test need not wait a minute."""
    alertmanager = binary("prometheus-alertmanager", "prometheus-alertmanager")
    am_port = free_port()
    am_log = (tmp_path / "alertmanager.log").open("wb")
    am = subprocess.Popen([alertmanager, f"--config.file={ROOT / 'deploy' / 'compose' / 'alertmanager.yml'}",
                           f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
                           "--cluster.listen-address="], stdout=am_log, stderr=subprocess.STDOUT)
    rules = tmp_path / "rules.yaml"
    rules.write_text(re.sub(r"^(\s+)for: \S+$", r"\1for: 0s", RULES.read_text(), flags=re.MULTILINE))
    bridge = RunningBridge(settings_for_test(tmp_path, budgets=BUDGETS), clock=lambda: NOW)
    prometheus_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "otlp-bridge", "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{bridge.ports.metrics}"]}]}],
    }))
    prom_log = (tmp_path / "prometheus.log").open("wb")
    prometheus = subprocess.Popen(
        [binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{prometheus_port}"], stdout=prom_log, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{am_port}/-/ready", am)
        for run in WAVE_1:
            replay(bridge, CLAUDE / run)
        deadline = time.monotonic() + 60
        alerts: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not alerts:
            with urllib.request.urlopen(f"http://127.0.0.1:{am_port}/api/v2/alerts?filter=alertname%3D"
                                        "%22ClaudeCodeBudgetExceeded%22", timeout=10) as response:
                alerts = json.load(response)
            time.sleep(0.5)
        assert alerts, "the budget alert never reached Alertmanager"
        (alert,) = alerts
        assert alert["labels"]["budget"] == "monthly"
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["runbook_url"] == "docs/runbook.md#claudecodebudgetexceeded"
        assert alert["status"]["state"] == "active"
    finally:
        for process in (prometheus, am):
            process.terminate()
            process.wait(20)
        prom_log.close()
        am_log.close()
        bridge.stop()

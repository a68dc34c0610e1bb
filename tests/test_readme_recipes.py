"""The README's `target_info` join, run as written against a real Prometheus scraping the bridge,
with several clients (one of them upgraded, so it has two `target_info` series)."""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_DELTA

from tests.prometheus_server import Prometheus
from tests.support import RunningBridge

README = Path(__file__).resolve().parent.parent / "README.md"
pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="prometheus is not installed (make test-tools)")


def _export(instance: str, os_type: str, version: str, usd: float, at_ns: int) -> bytes:
    """One Claude Code-like cost point from a client with `service.instance.id` set."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    for key, value in (("service.name", "claude-code"), ("service.instance.id", instance), ("os.type", os_type),
                       ("service.version", version)):
        resource_metrics.resource.attributes.add(key=key, value={"string_value": value})
    metric = resource_metrics.scope_metrics.add().metrics.add(name="claude_code.cost.usage", unit="USD")
    metric.sum.is_monotonic = True
    metric.sum.aggregation_temporality = AGGREGATION_TEMPORALITY_DELTA
    point = metric.sum.data_points.add(start_time_unix_nano=at_ns - 1, time_unix_nano=at_ns, as_double=usd)
    point.attributes.add(key="model", value={"string_value": "claude-opus-4-5"})
    return request.SerializeToString()


def _query(prometheus: Prometheus, promql: str) -> dict[str, object]:
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())  # type: ignore[no-any-return]


def test_the_target_info_join_works_with_many_clients(bridge: RunningBridge, tmp_path: Path) -> None:
    (recipe,) = re.findall(r"```promql\n(.*?)```", README.read_text(), flags=re.DOTALL)
    clients = [("host-a", "linux", "2.1.329", 1.5), ("host-a", "linux", "2.1.330", 0.25),  # upgraded
               ("host-b", "darwin", "2.1.330", 2.0)]
    for n, (instance, os_type, version, usd) in enumerate(clients):
        status, body, _ = bridge.post("/v1/metrics", _export(instance, os_type, version, usd, 1_700_000_000_000 + n))
        assert status == 200, body
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{bridge.ports.metrics}"])
    try:
        prometheus.wait_for('count(target_info{job="claude-code"}) == 3')
        result = {r["metric"]["instance"]: (r["metric"]["os_type"], float(r["value"][1]))
                  for r in prometheus.query(recipe)}
        # what the README had before: two clients (and one client's two versions) match one group
        naive = _query(prometheus, "claude_code_cost_usage_USD_total * on (job, instance) group_left (os_type) "
                                   "target_info")
    finally:
        prometheus.stop()
    assert result == {"host-a": ("linux", 1.75), "host-b": ("darwin", 2.0)}
    assert naive["status"] == "error"


def _layout() -> str:
    return README.read_text().split("\n## Layout\n", 1)[1].split("```\n", 2)[1]


def test_the_layout_names_every_module_and_only_real_ones() -> None:
    layout = _layout()
    package = README.parent / "otlp_bridge"
    modules = {p.relative_to(package) for p in package.rglob("*.py") if p.name != "__init__.py"}
    named = set(re.findall(r"[\w/]+\.py\b|\b[a-z_]+/(?=\s)", layout))
    missing = sorted(str(m) for m in modules if m.name not in {Path(n).name for n in named}
                     and f"{m.parent}/" not in named)
    assert not missing, f"add to README's Layout: {missing}"
    stems = {m.name for m in modules}
    unknown = sorted(n for n in named if n.endswith(".py") and Path(n).name not in stems)
    assert not unknown, f"README's Layout names modules that do not exist: {unknown}"

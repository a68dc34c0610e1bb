"""The container and Kubernetes files: schema-valid, consistent with each other, and runnable."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from otlp_bridge.config import load_settings
from tests.prometheus_server import binary, free_port
from tests.support import RunningBridge

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
CORE_KINDS = {"ConfigMap", "Secret", "Deployment", "PersistentVolumeClaim", "Service"}


def _documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _documents() if d["kind"] == kind]


@pytest.mark.parametrize("doc", [d for d in _documents() if d["kind"] in CORE_KINDS],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_core_objects_validate_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_every_resource_is_listed_and_every_kind_is_there() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert {d["kind"] for d in _documents()} == CORE_KINDS | {"ServiceMonitor", "PrometheusRule"}


def test_generated_objects_match_their_sources() -> None:
    sys.path.insert(0, str(K8S))
    try:
        import generate  # noqa: PLC0415 - the generator beside the manifests
    finally:
        sys.path.remove(str(K8S))
    for name, text in generate.rendered().items():
        assert (K8S / name).read_text() == text, f"{name} is stale: run python deploy/k8s/generate.py"


def test_prometheus_rule_groups_pass_promtool(tmp_path: Path) -> None:
    (rule,) = _by_kind("PrometheusRule")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run([binary("promtool"), "check", "rules", str(rules)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_config_map_is_labelled_for_the_grafana_sidecar() -> None:
    (dashboard,) = [d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == "otlp-bridge-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["claude-code.json"])["uid"] == "otlp-bridge-claude-code"


def test_service_monitor_probes_and_ports_line_up() -> None:
    (deployment,) = _by_kind("Deployment")
    (service,) = _by_kind("Service")
    (monitor,) = _by_kind("ServiceMonitor")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container_ports == {"otlp-grpc": 4317, "otlp-http": 4318, "metrics": 9464}
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {n: n for n in container_ports}
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    assert monitor["spec"]["selector"]["matchLabels"] == service["metadata"]["labels"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_config_map_and_secret_load_as_the_pod_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (config,) = [d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == "otlp-bridge-config"]
    (secret,) = _by_kind("Secret")
    path = tmp_path / "config.toml"
    path.write_text(config["data"]["config.toml"])
    for key, value in secret["stringData"].items():
        monkeypatch.setenv(key, value)
    settings = load_settings(path)
    assert settings.server.host == "0.0.0.0"
    assert str(settings.state.dir) == "/var/lib/otlp-bridge"
    assert settings.auth.tokens[0].labels == {"team": "platform"}
    assert settings.budgets[0].name == "org-monthly"


# --- Dockerfile -------------------------------------------------------------------------------------
def _dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^(\w+)\s+(.*)$", text, re.MULTILINE)]


def test_dockerfile_is_small_non_root_and_declares_its_ports_and_volume() -> None:
    instructions = _dockerfile()
    froms = [v for k, v in instructions if k == "FROM"]
    assert all(re.search(r":\d+\.\d+\.\d+-slim", f) for f in froms), "pinned slim base"
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM"):]
    assert ("USER", "10001:10001") in final
    assert ("EXPOSE", "4317 4318 9464") in final
    assert ("VOLUME", '["/var/lib/otlp-bridge"]') in final
    env = " ".join(v for k, v in final if k == "ENV")
    assert "OTLP_BRIDGE_SERVER__HOST=0.0.0.0" in env
    assert "OTLP_BRIDGE_STATE__DIR=/var/lib/otlp-bridge" in env


def test_dockerfile_healthcheck_command_tells_up_from_down(bridge: RunningBridge) -> None:
    (healthcheck,) = [v for k, v in _dockerfile() if k == "HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3:].strip())
    assert command[0] == "python"
    up = [sys.executable, *command[1:-1], command[-1].replace(":9464", f":{bridge.ports.metrics}")]
    assert subprocess.run(up, timeout=30, check=False).returncode == 0
    down = [sys.executable, *command[1:-1], command[-1].replace(":9464", f":{free_port()}")]
    assert subprocess.run(down, timeout=30, check=False, capture_output=True).returncode != 0


def test_compose_mounts_files_that_exist() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert set(compose["services"]) == {"otlp-bridge", "prometheus", "grafana"}
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / "deploy" / source).exists(), volume
    scrape = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["honor_labels"] is True


def test_readme_quick_start_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make serve" in readme
    assert "make test" in readme
    assert re.search(r"^serve:", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)
    assert shlex.split((ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]) == ["exec", "make", "test"]
    assert os.access(ROOT / ".ci" / "run", os.X_OK)

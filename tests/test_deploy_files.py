"""The container and Kubernetes files: schema-valid, consistent with each other, and runnable."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from benchmarks.targets import HEADROOM, memory_mib
from otlp_bridge.config import load_settings
from tests.prometheus_server import binary, free_port
from tests.support import RunningBridge, settings_for_test
from tests.tls_certs import make_certs

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
CORE_KINDS = {"ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "NetworkPolicy"}
RUNBOOK = ROOT / "docs" / "runbook.md"


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


def test_config_map_and_generated_secret_load_as_the_pod_would(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (config,) = [d for d in _by_kind("ConfigMap") if d["metadata"]["name"] == "otlp-bridge-config"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (generator,) = kustomization["secretGenerator"]
    assert generator["name"] == "otlp-bridge-tokens"
    assert generator["envs"] == ["tokens.env"]
    assert "tokens.env" in (ROOT / ".gitignore").read_text(), "the real tokens never go into git"
    path = tmp_path / "config.toml"
    path.write_text(config["data"]["config.toml"])
    digest = hashlib.sha256(b"a token").hexdigest()
    for line in (K8S / "tokens.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            monkeypatch.setenv(key, re.sub(r"<sha256[^>]*>", digest, value))
    settings = load_settings(path)
    assert settings.server.host == "0.0.0.0"
    assert str(settings.state.dir) == "/var/lib/otlp-bridge"
    assert settings.auth.tokens[0].labels == {"team": "platform"}
    assert settings.auth.tokens[0].sha256 == digest
    assert settings.budgets[0].name == "org-monthly"


# --- Dockerfile -------------------------------------------------------------------------------------
def _dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^(\w+)\s+(.*)$", text, re.MULTILINE)]


def test_dockerfile_is_small_non_root_and_declares_its_ports_and_volume() -> None:
    instructions = _dockerfile()
    (base,) = [v.removeprefix("BASE=") for k, v in instructions if k == "ARG" and v.startswith("BASE=")]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), "pinned slim base"
    assert [v for k, v in instructions if k == "FROM"] == ["${BASE} AS build", "${BASE}"]
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM"):]
    assert ("USER", "10001:10001") in final
    assert ("EXPOSE", "4317 4318 9464") in final
    assert ("VOLUME", '["/var/lib/otlp-bridge"]') in final
    assert ("COPY", "--from=build /opt/otlp-bridge /opt/otlp-bridge") in final, "only the venv, no wheels"
    env = " ".join(v for k, v in final if k == "ENV")
    assert "OTLP_BRIDGE_SERVER__HOST=0.0.0.0" in env
    assert "OTLP_BRIDGE_STATE__DIR=/var/lib/otlp-bridge" in env
    install = " ".join(v for k, v in instructions if k == "RUN")
    assert "--require-hashes" in install
    assert "-r requirements.lock" in install


def test_lock_pins_every_dependency_with_hashes() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==\S+ \\$", lock, re.MULTILINE)}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in declared:
        name = re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower()
        assert name in pinned, f"{name} is not in requirements.lock: run the pip-compile line in its header"
    assert "setuptools" in pinned, "the build backend is locked too, so the image builds offline"
    assert all("--hash=sha256:" in block for block in lock.split("==")[1:])


def test_health_command_tells_up_from_down(bridge: RunningBridge) -> None:
    (healthcheck,) = [v for k, v in _dockerfile() if k == "HEALTHCHECK"]
    assert json.loads(healthcheck[healthcheck.index("CMD") + 3:].strip()) == ["otlp-bridge", "health"]

    def health(port: int) -> int:
        env = {**os.environ, "OTLP_BRIDGE_SERVER__METRICS_PORT": str(port), "OTLP_BRIDGE_SERVER__HOST": "0.0.0.0"}
        return subprocess.run([sys.executable, "-m", "otlp_bridge", "health"], env=env, timeout=30, check=False,
                              capture_output=True).returncode

    assert health(bridge.ports.metrics) == 0
    assert health(free_port()) == 1


def test_health_command_follows_tls_on_the_metrics_port(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    tls = {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key), "metrics_port": True}
    running = RunningBridge(settings_for_test(tmp_path, tls=tls))
    try:
        env = {**os.environ, "OTLP_BRIDGE_SERVER__METRICS_PORT": str(running.ports.metrics),
               "OTLP_BRIDGE_TLS__CERT_FILE": str(certs.server_cert), "OTLP_BRIDGE_TLS__KEY_FILE": str(certs.server_key)}
        command = [sys.executable, "-m", "otlp_bridge", "health"]
        plain = subprocess.run(command, env=env, timeout=30, check=False, capture_output=True, text=True)
        assert plain.returncode == 1, "TLS on the bridge but not on its metrics port: plain HTTP is refused"
        env["OTLP_BRIDGE_TLS__METRICS_PORT"] = "true"
        secure = subprocess.run(command, env=env, timeout=30, check=False, capture_output=True, text=True)
        assert secure.returncode == 0, secure.stderr
        assert secure.stdout.startswith("https://127.0.0.1:")
    finally:
        running.stop()


def test_compose_mounts_files_that_exist_and_binds_to_loopback() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert set(compose["services"]) == {"otlp-bridge", "prometheus", "alertmanager", "grafana"}
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / "deploy" / source).exists(), volume
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", [])), service["ports"]
    budgets = compose["services"]["otlp-bridge"]["environment"]["OTLP_BRIDGE_BUDGETS"]
    assert budgets == "${OTLP_BRIDGE_BUDGETS:-[]}"
    readme = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"OTLP_BRIDGE_BUDGETS='([^']+)'", readme)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTLP_BRIDGE_BUDGETS", example)
        assert load_settings(None).budgets[0].limit_usd == 0.01
        env.setenv("OTLP_BRIDGE_BUDGETS", "[]")  # compose's default
        assert load_settings(None).budgets == []
    password = compose["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?"), "no default admin password"
    scrape = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["honor_labels"] is True
    assert scrape["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_compose_file_is_valid_and_demands_a_grafana_password() -> None:
    compose = binary("docker-compose", "docker-compose")
    command = [compose, "-f", str(ROOT / "deploy" / "compose.yaml"), "config", "-q"]
    env = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0
    assert "set GRAFANA_ADMIN_PASSWORD" in refused.stderr
    accepted = subprocess.run(command, env={**env, "GRAFANA_ADMIN_PASSWORD": "x"}, capture_output=True, text=True,
                              timeout=60, check=False)
    assert accepted.returncode == 0, accepted.stderr


def test_scrape_config_is_portable_to_victoria_metrics(tmp_path: Path) -> None:
    scrape = ROOT / "deploy" / "prometheus" / "scrape.yaml"
    assert "rule_files" not in yaml.safe_load(scrape.read_text())
    result = subprocess.run([binary("promtool"), "check", "config", str(scrape)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    vm = shutil.which("victoria-metrics")
    if vm is None:
        pytest.skip("victoria-metrics not installed (Debian package; `make test-tools` installs it)")
    result = subprocess.run([vm, f"-promscrape.config={scrape}", "-promscrape.config.dryRun",
                             f"-storageDataPath={tmp_path}"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_links_its_runbook_section() -> None:
    headings = set(re.findall(r"^## (\w+)$", RUNBOOK.read_text(), re.MULTILINE))
    alerts = [rule for group in yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yaml").read_text())["groups"]
              for rule in group["rules"] if "alert" in rule]
    assert {rule["alert"] for rule in alerts} == headings
    for rule in alerts:
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"


def test_memory_covers_the_default_caps() -> None:
    # MiB: peak RSS with the default limits.max_series and state.max_history_buckets full, under 40
    # parallel scrapes (`python -m benchmarks.sizing`, benchmarks/results/sizing.json)
    measured_peak = 411
    assert memory_mib("limits") >= measured_peak * HEADROOM
    assert memory_mib("requests") >= measured_peak, "the scheduler must reserve the peak"
    settings = load_settings(None)
    assert (settings.limits.max_series, settings.state.max_history_buckets) == (200_000, 1_000_000), \
        "re-measure when a default cap changes"


def test_kustomize_builds_with_a_tokens_file(tmp_path: Path) -> None:
    """`kubectl apply -k` as the README says: the generated Secret is what the Deployment reads, the
    component labels what kube-prometheus-stack selects. Needs a kubectl with kustomize 4+."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (any kubectl >= 1.21 builds kustomizations)")
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    digest = hashlib.sha256(b"a token").hexdigest()
    (tree / "tokens.env").write_text(
        (K8S / "tokens.env.example").read_text().replace("<sha256 of the token, 64 hex digits>", digest))
    built = subprocess.run([kubectl, "kustomize", str(tree)], capture_output=True, text=True, timeout=60, check=False)
    assert built.returncode == 0, built.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(built.stdout)}
    secret_name = docs["Secret"]["metadata"]["name"]
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": secret_name}}]
    assert docs["ServiceMonitor"]["metadata"]["labels"]["release"] == "prometheus"
    assert docs["PrometheusRule"]["metadata"]["labels"]["release"] == "prometheus"


def test_metrics_auth_component_protects_the_port_on_both_sides(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (any kubectl >= 1.21 builds kustomizations)")
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    (tree / "tokens.env").write_text((K8S / "tokens.env.example").read_text().replace(
        "<sha256 of the token, 64 hex digits>", "0" * 64))
    (tree / "components" / "metrics-auth" / "metrics-token").write_text("s3cret")
    kustomization = yaml.safe_load((tree / "kustomization.yaml").read_text())
    kustomization["components"].append("components/metrics-auth")
    (tree / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    built = subprocess.run([kubectl, "kustomize", str(tree)], capture_output=True, text=True, timeout=60, check=False)
    assert built.returncode == 0, built.stderr
    docs = list(yaml.safe_load_all(built.stdout))
    (secret,) = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "otlp-bridge-metrics"]
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    reference = {"name": "otlp-bridge-metrics", "key": "token"}
    assert monitor["spec"]["endpoints"][0]["authorization"] == {"type": "Bearer", "credentials": reference}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (env,) = container["env"]
    assert env == {"name": "OTLP_BRIDGE_AUTH__METRICS__BEARER_TOKEN", "valueFrom": {"secretKeyRef": reference}}
    assert "token" in secret["data"]


def test_release_label_component_and_examples() -> None:
    component = yaml.safe_load((K8S / "components" / "release-label" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    targets = {p["target"]["kind"]: yaml.safe_load(p["patch"]) for p in component["patches"]}
    assert set(targets) == {"ServiceMonitor", "PrometheusRule"}
    for patch in targets.values():  # JSON patches onto labels every such object already has
        assert patch == [{"op": "add", "path": "/metadata/labels/release", "value": "prometheus"}]
    for kind in targets:
        (doc,) = _by_kind(kind)
        assert doc["metadata"]["labels"]
    assert "components/release-label" in yaml.safe_load((K8S / "kustomization.yaml").read_text())["components"]
    assert all("release" not in d["metadata"].get("labels", {}) for d in _documents())
    (service,) = _by_kind("Service")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    routed: set[int] = set()
    for path in (K8S / "examples").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["apiVersion"].startswith("gateway.networking.k8s.io/"):  # CRDs: no schema offline
                routed |= {ref["port"] for rule in doc["spec"].get("rules", []) for ref in rule["backendRefs"]}
                continue
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
            routed |= {ports[route["backend"]["service"]["port"]["name"]]
                       for rule in doc["spec"]["rules"] for route in rule["http"]["paths"]}
    assert routed == {ports["otlp-grpc"], ports["otlp-http"]}, "examples route OTLP, never the metrics port"


def test_readme_quick_start_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make serve" in readme
    assert "make test" in readme
    assert re.search(r"^serve:", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)
    assert shlex.split((ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]) == ["exec", "make", "test"]
    assert os.access(ROOT / ".ci" / "run", os.X_OK)

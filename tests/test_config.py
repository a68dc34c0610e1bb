from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from otlp_bridge.config import DEFAULT_DROP, ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    settings = load_settings(None)
    assert settings.server.host == "127.0.0.1"
    assert (settings.server.grpc_port, settings.server.http_port, settings.server.metrics_port) == (4317, 4318, 9464)
    assert settings.state.dir == tmp_path / "otlp-bridge"
    assert set(DEFAULT_DROP) <= set(settings.labels.drop)


def test_env_wins_over_file_and_file_over_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[server]\ngrpc_port = 5317\nhttp_port = 5318\n[labels]\ndrop = ["session.id", "user.id"]\n')
    monkeypatch.setenv("OTLP_BRIDGE_SERVER__HTTP_PORT", "6318")
    settings = load_settings(config)
    assert settings.server.grpc_port == 5317
    assert settings.server.http_port == 6318
    assert settings.server.metrics_port == 9464
    assert settings.labels.drop == ["session.id", "user.id"]


def test_config_path_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text("[server]\nmetrics_port = 9999\n")
    monkeypatch.setenv("OTLP_BRIDGE_CONFIG", str(config))
    assert load_settings(None).server.metrics_port == 9999


def test_every_failing_field_is_listed(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\ngrpc_port = 70000\nhttp_port = "x"\nbogus = 1\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    message = str(info.value)
    assert "server.grpc_port" in message
    assert "server.http_port" in message
    assert "server.bogus" in message


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(broken)


def _keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    """(dotted path, key) of every setting, nested models and lists of models included."""
    out = []
    for key, field in model.model_fields.items():
        path = f"{prefix}{key}"
        nested = [t for t in (field.annotation, *get_args(field.annotation))
                  if isinstance(t, type) and issubclass(t, BaseModel)]
        if nested:
            out.append((path, key))
            out += _keys(nested[0], path + ".")
        else:
            out.append((path, key))
    return out


def test_example_config_is_valid_and_documents_every_key() -> None:
    load_settings(ROOT / "config.example.toml")
    text = (ROOT / "config.example.toml").read_text()
    for path, key in _keys(Settings):
        documented = f"{key} =" in text or f"[{path}]" in text or f"[[{path}]]" in text or f"[{path}." in text
        assert documented, f"{path} is not documented in config.example.toml"


@pytest.mark.parametrize(("budgets", "message"), [
    ([{"name": "a", "limit_usd": 1}, {"name": "a", "limit_usd": 2}], "budget names must be unique"),
    ([{"name": "a", "limit_usd": 1, "match": {"team.id": "x"}}], "match keys must be Prometheus label names"),
    ([{"name": "a", "limit_usd": 1, "match": {"__name__": "x"}}], "match keys must be Prometheus label names"),
    ([{"name": "a", "limit_usd": 1, "period": "year"}], "budgets.0.period"),
    ([{"name": "a", "limit_usd": float("inf")}], "budgets.0.limit_usd"),
])
def test_budgets_are_checked_at_start(budgets: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, budgets=budgets)


def test_a_rolling_five_hour_budget_is_a_period() -> None:
    settings = load_settings(None, budgets=[{"name": "block", "period": "5h", "limit_usd": 10, "match": {"team": "x"}}])
    assert settings.budgets[0].period == "5h"


def test_the_three_ports_must_differ() -> None:
    with pytest.raises(ConfigError, match=r"server: Value error, grpc_port, http_port and metrics_port must differ "
                                          r"\(given 4318, 4318, 9464\)"):
        load_settings(None, server={"grpc_port": 4318})
    assert load_settings(None, server={"grpc_port": 0, "http_port": 0, "metrics_port": 0}).server.grpc_port == 0


def test_log_settings() -> None:
    settings = load_settings(None, log_level="debug", log_format="json", log_digest_interval=0)
    assert (settings.log_level, settings.log_format, settings.log_digest_interval.total_seconds()) == \
        ("DEBUG", "json", 0)
    with pytest.raises(ConfigError, match="log_level: Input should be 'DEBUG'"):
        load_settings(None, log_level="LOUD")

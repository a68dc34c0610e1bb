"""Settings: defaults, then a TOML file, then `OTLP_BRIDGE_<SECTION>__<KEY>` env vars (env wins).

pydantic-settings does the layering; a bad value fails start-up with every
failing field listed.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from otlp_bridge.translate.naming import label_name

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
DEFAULT_DROP = ("session.id", "prompt.id", "event.sequence", "message.uuid",
                # Codex's session and turn ids (on its reported turn cost): one series per turn otherwise.
                "conversation.id", "turn.id",
                # Prompt text: Gemini CLI's resource carries its whole argv (`-p "<prompt>"`) even with
                # prompt logging off, and its router's free-text reasoning about the prompt.
                "process.command_args", "routing.reasoning")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "otlp-bridge"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not silently ignored


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    grpc_port: int = Field(4317, ge=0, le=65535)
    http_port: int = Field(4318, ge=0, le=65535)
    metrics_port: int = Field(9464, ge=0, le=65535)
    shutdown_grace_seconds: float = Field(5.0, ge=0)

    @model_validator(mode="after")
    def _distinct_ports(self) -> ServerSettings:
        ports = [p for p in (self.grpc_port, self.http_port, self.metrics_port) if p]  # 0: the OS chooses
        if len(set(ports)) < len(ports):
            raise ValueError(f"grpc_port, http_port and metrics_port must differ (given {self.grpc_port}, "
                             f"{self.http_port}, {self.metrics_port})")
        return self


class StateSettings(_Section):
    dir: Path = Field(default_factory=_default_state_dir)
    persist: bool = True
    synchronous: Literal["full", "normal"] = "full"
    series_ttl: timedelta = timedelta(0)
    input_ttl: timedelta = timedelta(hours=1)
    input_retention: timedelta = timedelta(days=7)
    max_inputs_in_memory: int = Field(200_000, gt=0)
    max_inputs_on_disk: int = Field(2_000_000, gt=0)  # past it the least recently seen go (never a live one)
    history_retention: timedelta = timedelta(days=62)  # hourly spend/token history: budgets, burn rate, the page
    max_history_buckets: int = Field(1_000_000, gt=0)  # past it the oldest hours go first (counted)
    maintenance_interval: timedelta = timedelta(seconds=10)

    @field_validator("dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()


class LimitSettings(_Section):
    max_request_bytes: int = Field(8 * 1024 * 1024, gt=0)
    max_decompressed_bytes: int = Field(32 * 1024 * 1024, gt=0)
    max_series: int = Field(200_000, gt=0)
    max_families: int = Field(10_000, gt=0)  # distinct metric names; Claude Code sends 8, its events make ~25
    max_label_value_length: int = Field(1024, gt=0)
    max_inflight_requests: int = Field(256, gt=0)
    max_inflight_bytes: int = Field(128 * 1024 * 1024, gt=0)
    retry_after_seconds: int = Field(1, ge=0)
    # Edges (SECURITY.md lists each with what a sender sees when it hits it).
    read_timeout: timedelta = timedelta(seconds=10)  # one request body/message, from first byte to last
    body_idle_timeout: timedelta = timedelta(seconds=5)  # silence between two chunks of one body
    connection_idle_timeout: timedelta = timedelta(seconds=60)  # a connection with no request in progress
    max_connections: int = Field(512, gt=0)  # open connections on the OTLP/HTTP port
    grpc_max_concurrent_streams: int = Field(100, gt=0)  # per gRPC connection
    # gRPC RPCs in flight; grpc buffers each message before the bridge sees it, so its message limit
    # is max_request_bytes capped at max_inflight_bytes / this (4 MiB by default, the Collector's).
    grpc_max_concurrent_rpcs: int = Field(32, gt=0)
    max_points_per_request: int = Field(20_000, gt=0)
    max_log_records_per_request: int = Field(20_000, gt=0)
    max_json_depth: int = Field(32, gt=0)  # OTLP/JSON nests 12 deep; AnyValue lists/maps add more


class LabelSettings(_Section):
    drop: list[str] = Field(default_factory=lambda: list(DEFAULT_DROP))


class TokenSettings(_Section):
    token: SecretStr | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in value if not label_name(k))
        if bad:
            raise ValueError(f"token label keys need a letter or digit (device, team, …), not {bad}")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> TokenSettings:
        if (self.token is None) == (self.sha256 is None):
            raise ValueError("give exactly one of token or sha256")
        return self


class MetricsAuthSettings(_Section):
    bearer_token: SecretStr | None = None
    basic_username: str | None = None
    basic_password: SecretStr | None = None

    @model_validator(mode="after")
    def _pairs(self) -> MetricsAuthSettings:
        if (self.basic_username is None) != (self.basic_password is None):
            raise ValueError("basic_username and basic_password go together")
        return self


class AuthSettings(_Section):
    tokens: list[TokenSettings] = Field(default_factory=list)
    metrics: MetricsAuthSettings = Field(default_factory=MetricsAuthSettings)


class TlsSettings(_Section):
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None  # set: clients must present a certificate it signed (mTLS)
    metrics_port: bool = False  # serve /metrics over TLS too

    @model_validator(mode="after")
    def _pairs(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("client_ca_file needs cert_file and key_file")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class BudgetSettings(_Section):
    name: str = Field(min_length=1, max_length=200)
    period: Literal["day", "week", "month", "5h"] = "month"  # 5h: a rolling window (this hour and the 4 before)
    limit_usd: float = Field(gt=0, allow_inf_nan=False)
    match: dict[str, str] = Field(default_factory=dict)  # Prometheus label → value, e.g. {team = "platform"}

    @field_validator("match")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in value if not _LABEL_NAME.fullmatch(k) or k.startswith("__"))
        if bad:
            raise ValueError(f"match keys must be Prometheus label names (team, user_id, …), not {bad}")
        return value


class PriceSettings(_Section):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write_5m: float = Field(ge=0)
    cache_write_1h: float = Field(ge=0)
    cache_read: float = Field(ge=0)


class EconomicsSettings(_Section):
    subscription_usd_per_month: float = Field(0.0, ge=0)  # e.g. 200 for Max: "is my plan worth it"
    burn_window: timedelta = timedelta(hours=1)


class EventSettings(_Section):
    session_idle: timedelta = timedelta(minutes=15)
    active_window: timedelta = timedelta(minutes=5)
    max_sessions: int = Field(10_000, gt=0)
    classify_prompts: bool = True


class InsightSettings(_Section):
    low_cache_hit_ratio: float = Field(0.5, ge=0, le=1)
    target_cache_hit_ratio: float = Field(0.8, ge=0, le=1)
    min_tokens: float = Field(10_000, ge=0)
    small_request_output_tokens: float = Field(300, ge=0)
    min_requests: int = Field(5, ge=1)
    smaller_model: str = "claude-haiku-4-5"
    input_output_ratio: float = Field(200, gt=0)
    api_error_ratio: float = Field(0.05, ge=0, le=1)
    tool_failure_ratio: float = Field(0.2, ge=0, le=1)
    min_tool_calls: int = Field(5, ge=1)
    silent_after: timedelta = timedelta(hours=24)


_RESERVED_PUSH_HEADERS = frozenset({"content-encoding", "content-type", "x-prometheus-remote-write-version",
                                    "user-agent", "authorization"})


class RemoteWriteSettings(_Section):
    """One Prometheus remote-write receiver the exact totals are pushed to (remote-write 1.0)."""

    url: str = Field(pattern=r"^https?://[^\s]+$")
    name: str | None = None  # the `remote` label on the self-metrics; default: the URL
    interval: timedelta = timedelta(seconds=30)
    timeout: timedelta = timedelta(seconds=10)
    headers: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)  # added to every series, e.g. {instance = "bridge-1"}
    bearer_token: SecretStr | None = None
    basic_username: str | None = None
    basic_password: SecretStr | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate, for receivers that require mTLS
    key_file: Path | None = None
    insecure_skip_verify: bool = False
    max_retries: int = Field(5, ge=0)
    min_backoff: timedelta = timedelta(milliseconds=500)
    max_backoff: timedelta = timedelta(seconds=30)
    max_samples_per_request: int = Field(2000, gt=0)
    max_queued_snapshots: int = Field(10, gt=0)

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be more than 0 seconds")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RemoteWriteSettings:
        if (self.basic_username is None) != (self.basic_password is None):
            raise ValueError("basic_username and basic_password go together")
        if self.bearer_token is not None and self.basic_username is not None:
            raise ValueError("give bearer_token or basic_username/basic_password, not both")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        reserved = sorted(h for h in self.headers if h.lower() in _RESERVED_PUSH_HEADERS)
        if reserved:
            raise ValueError(f"headers the protocol or auth sets cannot be overridden: {', '.join(reserved)}")
        return self

    @property
    def remote(self) -> str:
        """How logs and self-metrics name this receiver: never with credentials from the URL."""
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OTLP_BRIDGE_", env_nested_delimiter="__", extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    labels: LabelSettings = Field(default_factory=LabelSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    timezone: str = "UTC"  # budget periods and "today" begin at midnight here
    budgets: list[BudgetSettings] = Field(default_factory=list)
    pricing: dict[str, PriceSettings] = Field(default_factory=dict)  # model → price, overrides the table
    economics: EconomicsSettings = Field(default_factory=EconomicsSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    insights: InsightSettings = Field(default_factory=InsightSettings)
    remote_write: list[RemoteWriteSettings] = Field(default_factory=list)  # push to Prometheus receivers

    @field_validator("budgets")
    @classmethod
    def _unique_budget_names(cls, value: list[BudgetSettings]) -> list[BudgetSettings]:
        names = [budget.name for budget in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"budget names must be unique; repeated: {twice}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value
    log_level: Annotated[LogLevel, BeforeValidator(_upper)] = "INFO"  # "info" works too
    log_format: Literal["text", "json"] = "text"  # json: one object per line, for log pipelines
    log_digest_interval: timedelta = timedelta(seconds=60)  # an INFO line of what arrived; 0: off

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


class ConfigError(Exception):
    """A config that cannot be used; the message lists every failing field."""


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, the TOML file (`path` or $OTLP_BRIDGE_CONFIG) and the environment."""
    chosen = path or os.environ.get("OTLP_BRIDGE_CONFIG") or None
    toml_file = Path(chosen) if chosen else None
    if toml_file is not None and not toml_file.is_file():
        raise ConfigError(f"config file not found: {toml_file}")

    class FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=toml_file)

    try:
        return FromFile(**overrides)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError(f"invalid configuration ({toml_file or 'environment'}):\n" + "\n".join(lines)) from None
    except ValueError as exc:  # a TOML syntax error
        raise ConfigError(f"cannot read {toml_file}: {exc}") from None

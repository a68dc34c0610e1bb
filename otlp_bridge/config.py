"""Settings: defaults, then a TOML file, then `OTLP_BRIDGE_<SECTION>__<KEY>` env vars (env wins).

pydantic-settings does the layering; a bad value fails start-up with every
failing field listed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DROP = ("session.id", "prompt.id", "event.sequence", "message.uuid")


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
    max_request_bytes: int = Field(16 * 1024 * 1024, gt=0, description="after decompression")


class StateSettings(_Section):
    dir: Path = Field(default_factory=_default_state_dir)

    @field_validator("dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()


class LabelSettings(_Section):
    drop: list[str] = Field(default_factory=lambda: list(DEFAULT_DROP))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OTLP_BRIDGE_", env_nested_delimiter="__", extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    labels: LabelSettings = Field(default_factory=LabelSettings)
    log_level: str = "INFO"

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

"""Settings, read from environment variables and validated once at start.

Every setting has an environment variable (the README lists them with their defaults). A bad value stops
the engine with a message that names the variable and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from actions.delivery import DeliverySettings
from actions.egress import DEFAULT_DENY, parse_networks
from journey_engine.errors import SettingsError
from journey_engine.identities import IdentityError, check_region


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "journey-engine"


class Settings(BaseModel):
    """The engine's settings. Field names map to `JOURNEY_<NAME>` variables, except `database_url`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str | None = Field(default=None, description="PostgreSQL DSN; unset: embedded server")
    data_dir: Path = Field(default_factory=_default_data_dir, description="embedded PostgreSQL data folder")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    processes: int = Field(default=1, ge=1, le=64, description="engine processes sharing the port")
    reuse_port: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    pool_min_size: int = Field(default=2, ge=1, le=100)
    pool_max_size: int = Field(default=10, ge=1, le=200)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    max_batch_events: int = Field(default=1000, ge=1, le=100_000)
    webhook_timeout: float = Field(default=10.0, gt=0, le=120)
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    webhook_deny: str = ",".join(DEFAULT_DENY)
    webhook_concurrency: int = Field(default=64, ge=1, le=1000)
    sweep_interval: float = Field(default=0.25, gt=0, le=60)
    ingest_max_pending: int = Field(default=20_000, ge=1, le=1_000_000)
    ingest_writers: int = Field(default=3, ge=1, le=16)
    phone_region: str = Field(default="US", min_length=2, max_length=2)
    shutdown_timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator("database_url")
    @classmethod
    def _check_dsn(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",")]
        except ValueError:
            raise ValueError("must be comma-separated seconds, such as 5,300,1800") from None
        if not delays or any(d < 0 for d in delays):
            raise ValueError("must list at least one delay, none negative")
        return value

    @field_validator("webhook_deny")
    @classmethod
    def _check_deny(cls, value: str) -> str:
        parse_networks([part for part in value.split(",") if part.strip()])
        return value

    def delivery_settings(self) -> DeliverySettings:
        return DeliverySettings(
            timeout=self.webhook_timeout,
            schedule=tuple(float(part) for part in self.webhook_retry_schedule.split(",")),
            deny=parse_networks([part for part in self.webhook_deny.split(",") if part.strip()]),
            concurrency=self.webhook_concurrency,
        )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("phone_region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        try:
            return check_region(value)
        except IdentityError as exc:
            raise ValueError(exc.reason) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the settings from `environ` (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            var = env_var(name)
            if var in env and env[var] != "":
                values[name] = env[var]
        values.update(overrides)
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                name = str(err["loc"][0]) if err["loc"] else "settings"
                problems.append(f"{env_var(name)}: {err['msg']}")
            raise SettingsError("; ".join(problems)) from None
        if settings.pool_min_size > settings.pool_max_size:
            raise SettingsError("JOURNEY_POOL_MIN_SIZE: must not exceed JOURNEY_POOL_MAX_SIZE")
        if settings.ingest_writers >= settings.pool_max_size and settings.ingest_writers > 1:
            if "ingest_writers" in values:
                raise SettingsError(
                    "JOURNEY_INGEST_WRITERS: must be less than JOURNEY_POOL_MAX_SIZE (reads need connections)"
                )
            # The default fits a small pool: leave reads a connection.
            settings = settings.model_copy(update={"ingest_writers": max(1, settings.pool_max_size - 1)})
        return settings


def env_var(field_name: str) -> str:
    """The environment variable behind a settings field."""
    return "DATABASE_URL" if field_name == "database_url" else f"JOURNEY_{field_name.upper()}"

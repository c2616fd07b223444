"""One typed Settings object, read once from the environment (``TOCSIN_*``)."""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tocsin.errors import ConfigurationError
from tocsin.errors import DatabaseUnavailable as DatabaseUnavailable  # re-exported

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DIGEST_PRIORITIES = ("MEDIUM", "LOW", "INFO")
DEFAULT_DIGEST_INTERVALS = {"MEDIUM": 300, "LOW": 900, "INFO": 3600}
MAX_DIGEST_INTERVAL = 30 * 86400
DATABASE_URL_FORMS = (
    "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE or sqlite+aiosqlite:///PATH"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_", extra="ignore", frozen=True)

    data_dir: Path = Path("./tocsin-data")
    database_url: str | None = None
    secret_keys: SecretStr | None = None
    bootstrap_token: SecretStr | None = None
    allowed_private_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    delivery_timeout: float = Field(default=10.0, gt=0, le=600)
    retry_base_delay: float = Field(default=5.0, ge=0, le=86400)
    lease_grace: float = Field(default=15.0, ge=6, le=3600)
    "Seconds a claim's lease outlasts the delivery timeout: how long a crashed worker's"
    " half-sent delivery waits before another worker takes it (at least the 5 s a send"
    " that ignores its timeout is given, plus one)."
    digest_intervals: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_DIGEST_INTERVALS)
    )
    slack_api_base: str = "https://slack.com/api"
    telegram_api_base: str = "https://api.telegram.org"
    sendgrid_api_base: str = "https://api.sendgrid.com"
    message_prefix: str = Field(default="[Tocsin]", max_length=64)
    emit_rate_limit: float = Field(default=0.0, ge=0, le=1_000_000)
    "Events per second one token may emit; 0 is unlimited."
    emit_queue_limit: int = Field(default=10_000, ge=1, le=1_000_000)
    "Events that may wait for the writer before emits are refused (HTTP 503)."
    retention_days: float = Field(default=30.0, ge=0, le=36500)
    "Finished events older than this are pruned with their deliveries; 0 keeps them forever."

    @field_validator("bootstrap_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # TOCSIN_BOOTSTRAP_TOKEN= (empty) must not count as set: it would accept no token
        # and also stop the first start from printing one, locking the operator out.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        # The messages never repeat the URL: it usually carries a password.
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError(f"use {DATABASE_URL_FORMS}")
        try:
            make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError(f"not a valid URL; use {DATABASE_URL_FORMS}") from None
        return value

    @field_validator("allowed_private_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            networks = []
            for position, part in enumerate(parts, start=1):
                try:
                    networks.append(ipaddress.ip_network(part, strict=False))
                except ValueError:
                    raise ValueError(
                        f"item {position} is not a CIDR such as 10.0.0.0/8 or fd00::/8"
                    ) from None
            return tuple(networks)
        return value

    @field_validator("digest_intervals", mode="before")
    @classmethod
    def _parse_digest_intervals(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        intervals = dict(DEFAULT_DIGEST_INTERVALS)
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, seconds = part.partition("=")
            name = name.strip().upper()
            if not sep or name not in DIGEST_PRIORITIES:
                raise ValueError(f"expected PRIORITY=SECONDS with PRIORITY in {DIGEST_PRIORITIES}")
            try:
                intervals[name] = int(seconds)
            except ValueError:
                raise ValueError(f"{name}: seconds must be an integer") from None
            if not 0 < intervals[name] <= MAX_DIGEST_INTERVAL:
                raise ValueError(f"{name}: seconds must be from 1 to {MAX_DIGEST_INTERVAL}")
        return intervals

    @field_validator("telegram_api_base", "sendgrid_api_base")
    @classmethod
    def _check_api_base(cls, value: str) -> str:
        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
        if not value.startswith(("https://", "http://")) or not host:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("slack_api_base")
    @classmethod
    def _check_slack_api_base(cls, value: str) -> str:
        return cls._check_api_base(value)

    @field_validator("message_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        # It starts e-mail subjects: a line break would be a header injection.
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must be one line without control characters")
        return value

    @cached_property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tocsin.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def key_file(self) -> Path:
        return self.data_dir / "secret.key"


def load_settings(**overrides: Any) -> Settings:
    """Read the environment; a bad value raises ConfigurationError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigurationError(f"TOCSIN_{field.upper()} is invalid: {message}") from None

"""One typed Settings object, read once from the environment (``TOCSIN_*``)."""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DIGEST_PRIORITIES = ("MEDIUM", "LOW", "INFO")
DEFAULT_DIGEST_INTERVALS = {"MEDIUM": 300, "LOW": 900, "INFO": 3600}


class ConfigurationError(Exception):
    """A setting is unusable; the message names the variable and never carries its value."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_", extra="ignore", frozen=True)

    data_dir: Path = Path("./tocsin-data")
    database_url: str | None = None
    secret_keys: SecretStr | None = None
    bootstrap_token: SecretStr | None = None
    allowed_private_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    delivery_timeout: float = Field(default=10.0, gt=0, le=600)
    retry_base_delay: float = Field(default=5.0, ge=0, le=86400)
    digest_intervals: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_DIGEST_INTERVALS)
    )
    telegram_api_base: str = "https://api.telegram.org"
    message_prefix: str = Field(default="[Tocsin]", max_length=64)

    @field_validator("allowed_private_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            try:
                return tuple(ipaddress.ip_network(p, strict=False) for p in parts)
            except ValueError as exc:
                raise ValueError(f"not a list of CIDRs ({exc})") from None
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
            if intervals[name] <= 0:
                raise ValueError(f"{name}: seconds must be positive")
        return intervals

    @field_validator("telegram_api_base")
    @classmethod
    def _check_api_base(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

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

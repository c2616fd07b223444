"""What every resolver gets: the process's services and the caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tocsin.settings import Settings
from tocsin.storage.database import Database
from tocsin.storage.enums import Role
from tocsin.storage.secretbox import SecretBox

if TYPE_CHECKING:
    from tocsin.services import Services


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's name and role (never its value)."""

    name: str
    role: Role
    token_id: str | None = None


@dataclass(slots=True)
class Context:
    """One per request."""

    services: Services
    principal: Principal
    loaders: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def box(self) -> SecretBox:
        return self.services.box

    def loader(self, name: str, factory: Callable[[], Any]) -> Any:
        """A per-request DataLoader, created on first use."""
        if name not in self.loaders:
            self.loaders[name] = factory()
        return self.loaders[name]

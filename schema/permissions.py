"""Who may call what: one permission class, parameterised by the roles a field admits."""

from __future__ import annotations

from typing import Any, ClassVar

from graphql import GraphQLErrorExtensions
from strawberry.permission import BasePermission
from strawberry.types import Info

from tocsin.storage.enums import Role


class _RolePermission(BasePermission):
    roles: ClassVar[frozenset[Role]] = frozenset()
    message = "Your token's role may not do this."
    error_extensions: GraphQLErrorExtensions | None = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.principal.role in self.roles


def allow(*roles: Role) -> type[BasePermission]:
    """A permission class admitting exactly ``roles``."""
    name = "Allow" + "".join(role.value.title() for role in roles)
    return type(name, (_RolePermission,), {"roles": frozenset(roles)})


ANYONE = [allow(Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.EMITTER)]
READERS = [allow(Role.VIEWER, Role.EDITOR, Role.ADMIN)]
EDITORS = [allow(Role.EDITOR, Role.ADMIN)]
ADMINS = [allow(Role.ADMIN)]
EMITTERS = [allow(Role.EMITTER, Role.ADMIN)]

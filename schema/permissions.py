"""Who may call what: one permission class, parameterised by the roles a field admits,
and a variant for non-null lists that refuses beside the data instead of nulling it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar

from graphql import GraphQLError, GraphQLErrorExtensions
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types import Info

from tocsin.storage.enums import Role

FORBIDDEN = "FORBIDDEN"
_BESIDE_DATA = "errors beside data"


class _RolePermission(BasePermission):
    roles: ClassVar[frozenset[Role]] = frozenset()
    message = "Your token's role may not do this."
    error_extensions: GraphQLErrorExtensions | None = {"code": FORBIDDEN}

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
# Who may read an event's content: the editors, and the emitter of it (an EMITTER reaches
# an event only through its own emitEvent/emitEvents payload).
EVENT_READERS = [allow(Role.EDITOR, Role.ADMIN, Role.EMITTER)]


class RefuseBesideData(PermissionExtension):
    """For a non-null list field: a role that may not read it gets ``[]`` and a FORBIDDEN
    error with the field's path beside the data. A raised error would null the field, and
    with it the nearest nullable object around it: an EMITTER asking for its event's
    ``deliveries`` lost the stored event's id. ``ErrorsBesideData`` adds the errors."""

    def __init__(self, *roles: Role) -> None:
        super().__init__(permissions=[allow(*roles)()], use_directives=False, fail_silently=True)

    def _allowed(self, source: Any, info: Info) -> bool:
        return all(p.has_permission(source, info) for p in self.permissions)

    def _refused(self, info: Info) -> list[Any]:
        permission = self.permissions[0]
        info.context.loader(_BESIDE_DATA, list).append(
            GraphQLError(
                permission.message or "Your token's role may not do this.",
                path=info.path.as_list(),
                extensions={"code": FORBIDDEN},
            )
        )
        return []

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        if not self._allowed(source, info):
            return self._refused(info)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        if not self._allowed(source, info):
            return self._refused(info)
        return await next_(source, info, **kwargs)


class ErrorsBesideData(SchemaExtension):
    """Adds the errors that RefuseBesideData recorded to the result's errors."""

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        recorded = beside_data_errors(self.execution_context.context)
        if recorded and result is not None:
            result.errors = [*(result.errors or []), *recorded]


def beside_data_errors(context: Any) -> list[GraphQLError]:
    """The errors RefuseBesideData recorded in this request's context."""
    loaders = getattr(context, "loaders", None)
    recorded = loaders.get(_BESIDE_DATA) if isinstance(loaders, dict) else None
    return list(recorded or ())

"""The root Subscription: live events over graphql-transport-ws on ``/graphql``, and the
context of such a connection (``schema/websocket.py`` serves it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import strawberry
from starlette.websockets import WebSocket, WebSocketState
from strawberry.types import Info

from tocsin.resolvers.context import Context
from tocsin.schema.permissions import EDITORS
from tocsin.schema.types import Event

UNAUTHORIZED = 4401


@dataclass(slots=True)
class SocketContext(Context):
    """One WebSocket connection's context; its caller is known after connection_init."""

    connection_params: dict[str, Any] | None = field(default=None, repr=False)
    websocket: WebSocket | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    async def close_unauthorized(self, reason: str) -> None:
        if self.websocket is not None:
            if self.websocket.application_state != WebSocketState.DISCONNECTED:
                await self.websocket.close(code=UNAUTHORIZED, reason=reason)

    async def still_signed_in(self) -> bool:
        """False, with the socket closing 4401, once the token was revoked (a connection
        lives long; the token cache keeps this check cheap)."""
        if self.token is None or await self.services.tokens.resolve(self.token) is not None:
            return True
        await self.close_unauthorized("Unauthorized: the API token was revoked")
        return False


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=EDITORS,
        description="Every newly accepted event, live (graphql-transport-ws on /graphql). "
        "EDITOR.\nDeduplicated events are included (they were accepted); a subscriber that "
        "falls behind by more than a couple of hundred events loses the oldest of them. "
        'Authenticate in connection_init: {"Authorization": "Bearer <token>"}; an unknown '
        "or revoked token closes the socket with 4401.",
    )
    async def events(self, info: Info) -> AsyncGenerator[Event, None]:
        context = info.context
        async with context.services.feed.subscribe() as queue:
            while True:
                row = await queue.get()
                if isinstance(context, SocketContext) and not await context.still_signed_in():
                    await asyncio.Event().wait()  # the socket is closing; its shutdown ends us
                # One connection lives long: each event starts with fresh DataLoaders, so
                # that its deliveries are read now, not answered from an earlier event's cache.
                context.loaders.clear()
                yield Event.from_row(row)

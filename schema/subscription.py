"""The root Subscription: live events over graphql-transport-ws on ``/graphql``."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from tocsin.schema.permissions import EDITORS
from tocsin.schema.types import Event


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=EDITORS,
        description="Every newly accepted event, live (graphql-transport-ws on /graphql). "
        "EDITOR.\nDeduplicated events are included (they were accepted); a subscriber that "
        "falls behind by more than a couple of hundred events loses the oldest of them. "
        'Authenticate in connection_init: {"Authorization": "Bearer <token>"}.',
    )
    async def events(self, info: Info) -> AsyncGenerator[Event, None]:
        async with info.context.services.feed.subscribe() as queue:
            while True:
                row = await queue.get()
                # One connection lives long: each event starts with fresh DataLoaders, so
                # that its deliveries are read now, not answered from an earlier event's cache.
                info.context.loaders.clear()
                yield Event.from_row(row)

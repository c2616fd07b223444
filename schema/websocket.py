"""GraphQL over WebSocket on ``/graphql`` (graphql-transport-ws, Strawberry's own handler).

A browser cannot set headers on a WebSocket, so the API token comes in the
``connection_init`` payload: ``{"Authorization": "Bearer <token>"}`` (or ``authorization``,
or ``token`` with the bare token); the upgrade request's ``Authorization`` header is used
when the payload has none. An unknown or missing token closes the socket with 4401
Unauthorized before ``connection_ack``, so nothing runs unauthenticated (Strawberry closes
a ``subscribe`` sent before the ack with 4401 as well). The fields' roles then apply as
over HTTP: a VIEWER's ``events`` subscription gets a FORBIDDEN error. Only subscriptions
run here; queries and mutations are POSTed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage,
    SubscribeMessage,
)
from strawberry.types.unset import UNSET, UnsetType

from tocsin.resolvers.context import Principal
from tocsin.schema import MAX_TOKENS, schema
from tocsin.schema.subscription import SocketContext
from tocsin.storage.enums import Role

# Stands in until connection_init names the caller; no operation runs before that.
NOBODY = Principal(name="(not signed in)", role=Role.VIEWER)


class _Socket(ASGIWebSocketAdapter):
    """Closing twice is a no-op: a refused connection_init is closed with our code first."""

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state != WebSocketState.DISCONNECTED:
            await self.ws.close(code=code, reason=reason)


def token_from(params: Mapping[str, Any] | None, headers: Mapping[str, str]) -> str | None:
    """The API token of connection_init's payload, else of the Authorization header."""
    params = params or {}
    for key in ("Authorization", "authorization"):
        value = params.get(key)
        if isinstance(value, str) and value.strip():
            scheme, _, token = value.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    bare = params.get("token")
    if isinstance(bare, str) and bare.strip():
        return bare.strip().removeprefix("Bearer ").strip() or None
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class _SubscriptionsOnly(BaseGraphQLTransportWSHandler[SocketContext, None]):
    """Queries and mutations go over HTTP, where the request's own guards are (body size,
    429/503 answers): over the socket they end with an error, unexecuted."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload = message.get("payload") or {}
        if self.connection_acknowledged and not _is_subscription(payload):
            error = GraphQLError(
                "Only subscriptions run over the WebSocket: POST queries and mutations to "
                "/graphql.",
                extensions={"code": "BAD_REQUEST"},
            )
            refusal = ErrorMessage(id=message["id"], type="error", payload=[error.formatted])
            await self.send_message(refusal)
            return
        await super().handle_subscribe(message)


def _is_subscription(payload: Mapping[str, Any]) -> bool:
    """The operation is a subscription (a document that does not parse is left to Strawberry,
    which closes the socket with 4400 as the protocol says)."""
    try:
        document = parse(str(payload.get("query") or ""), max_tokens=MAX_TOKENS)
    except GraphQLError:
        return True
    operation = get_operation_ast(document, payload.get("operationName"))
    return operation is None or operation.operation == OperationType.SUBSCRIPTION


class GraphQLSocket(GraphQL[SocketContext, None]):
    """Strawberry's ASGI view, for WebSocket connections only (POST stays app.py's route)."""

    websocket_adapter_class = _Socket
    graphql_transport_ws_handler_class = _SubscriptionsOnly

    def __init__(self) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=20,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise RuntimeError("GraphQLSocket serves WebSocket connections only")
        await super().__call__(scope, receive, send)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> SocketContext:
        websocket = response if isinstance(response, WebSocket) else None
        return SocketContext(
            services=request.app.state.services, principal=NOBODY, websocket=websocket
        )

    async def on_ws_connect(self, context: SocketContext) -> UnsetType | dict[str, object] | None:
        headers = context.websocket.headers if context.websocket is not None else {}
        token = token_from(context.connection_params, headers)
        principal = await context.services.tokens.resolve(token) if token else None
        if principal is None:
            await context.close_unauthorized("Unauthorized: send a valid API token")
            raise ConnectionRejectionError()
        context.principal, context.token = principal, token
        return UNSET

"""The GraphQL schema: types, inputs, permissions and the guards that protect it."""

from __future__ import annotations

from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from tocsin.resolvers.problems import ProblemError
from tocsin.schema.mutation import Mutation
from tocsin.schema.query import Query
from tocsin.schema.scalars import DateTime
from tocsin.schema.types import (
    DiscordChannel,
    EmailChannel,
    SlackChannel,
    TelegramChannel,
    WebhookChannel,
)

MAX_DEPTH = 10
MAX_ALIASES = 50
MAX_TOKENS = 5000


def _should_mask(error: GraphQLError) -> bool:
    """Mask what we did not mean to say: anything but GraphQL and input errors."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | ProblemError)


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[SlackChannel, WebhookChannel, EmailChannel, DiscordChannel, TelegramChannel],
        scalar_overrides={datetime: DateTime},
        config=StrawberryConfig(auto_camel_case=True),
        extensions=[
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaskErrors(
                should_mask_error=_should_mask, error_message="Internal server error."
            ),
        ],
    )


schema = build_schema()

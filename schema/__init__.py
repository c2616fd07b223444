"""The GraphQL schema: types, inputs, permissions and the guards that protect it."""

from __future__ import annotations

import logging
import re
from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from tocsin.resolvers.problems import ProblemError
from tocsin.schema.direct import DirectEmits, RememberEmits
from tocsin.schema.emit_fast_path import install_emit_fast_path
from tocsin.schema.limits import (
    BoundedParserCache,
    BoundedValidationCache,
    CodedMaxTokensLimiter,
    Limits,
    query_cost_rule,
)
from tocsin.schema.mutation import Mutation
from tocsin.schema.permissions import ErrorsBesideData
from tocsin.schema.query import Query
from tocsin.schema.scalars import JSON, DateTime, JSONScalar
from tocsin.schema.subscription import Subscription
from tocsin.schema.types import KIND_TYPES

MAX_DEPTH = 10
MAX_ALIASES = 50
# Counted with fragments expanded. GraphiQL's introspection query is about 230
# selections and 10 spreads (expanded), 5 deep.
MAX_FRAGMENT_SPREADS = 200
MAX_SELECTIONS = 2000
MAX_TOKENS = 5000
VALIDATION_CACHE_SIZE = 512

# The rules are part of ValidationCache's key: a rule built per request would make every
# request miss the cache (measured: validation was 55 % of the server's CPU under
# emitEvent load). The rules are built once here and added with a stable identity.
LIMITS = Limits(
    depth=MAX_DEPTH,
    aliases=MAX_ALIASES,
    spreads=MAX_FRAGMENT_SPREADS,
    selections=MAX_SELECTIONS,
)
LIMIT_RULES = [query_cost_rule(LIMITS)]

log = logging.getLogger("tocsin.graphql")


def _should_mask(error: GraphQLError) -> bool:
    """Mask what we did not mean to say: anything but GraphQL and input errors."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | ProblemError)


# graphql-core repeats the caller's input in some messages ("..., found: {whole input
# object}", "Int cannot represent non-integer value: '...'", "found String '...'"). A
# channel input holds secrets, so the app cuts the echo from every error it answers
# (see app.py): the rest of the message still says which field and what was wrong.
_ECHOES = (
    (re.compile(r",?\s*\b[Ff]ound: .*\Z", re.S), ""),
    (re.compile(r"(cannot represent [\w\s-]*value): .*\Z", re.S), r"\1"),
    (re.compile(r"(found (?:String|BlockString)) .*\Z", re.S), r"\1"),
)


def without_input_echo(message: str) -> str:
    cleaned = message
    for pattern, replacement in _ECHOES:
        cleaned = pattern.sub(replacement, cleaned)
    if cleaned == message or cleaned.endswith((".", "?")):
        return cleaned
    return cleaned + "."


class TocsinSchema(strawberry.Schema):
    direct: DirectEmits
    "Emit documents already validated, run by graphql-core directly (schema/direct.py)."

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log unexpected errors with their traceback; the caller's own mistakes (syntax,
        validation, permissions, input problems) only as a DEBUG line that repeats neither
        the document nor the message, since both may carry the secrets the caller sent."""
        for error in errors:
            where = ".".join(str(p) for p in error.path or ()) or "the operation"
            if _should_mask(error):
                log.error("unexpected error in %s", where, exc_info=error.original_error)
            else:
                code = (error.extensions or {}).get("code", "GRAPHQL_ERROR")
                log.debug("GraphQL error %s in %s", code, where)


def _mask_errors() -> MaskErrors:
    return MaskErrors(should_mask_error=_should_mask, error_message="Internal server error.")


def build_schema() -> TocsinSchema:
    direct = DirectEmits(_mask_errors())
    built = TocsinSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[channel_type for channel_type, _ in KIND_TYPES.values()],
        scalar_overrides={datetime: DateTime, JSON: JSONScalar},
        config=StrawberryConfig(auto_camel_case=True),
        extensions=[
            lambda: BoundedParserCache(maxsize=512),
            lambda: BoundedValidationCache(maxsize=VALIDATION_CACHE_SIZE),
            lambda: CodedMaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: AddValidationRules(LIMIT_RULES),
            ErrorsBesideData,
            _mask_errors,
            lambda: RememberEmits(direct),
        ],
    )
    install_emit_fast_path(built)
    direct.schema = built
    built.direct = direct
    return built


schema = build_schema()

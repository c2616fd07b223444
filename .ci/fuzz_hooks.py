"""schemathesis hooks for .ci/fuzz: values for Tocsin's scalars, and what counts as a
server error.

Without a strategy for a custom scalar, schemathesis leaves its arguments out (or null):
JSON (metadata, headers, metadataMatch) and DateTime get one here, non-finite numbers and
huge integers included. Half of the emits name a registered event type, so that
their metadata reaches storage instead of stopping at UNKNOWN_EVENT_TYPE.

schemathesis' own not_a_server_error check also counts a GraphQL error that has a `path`
and a code it does not know as a server error, and Tocsin answers bad input that way on
purpose (INVALID_CURSOR, OUT_OF_RANGE, ... with userErrors). This check keeps what
matters: an HTTP 5xx (but a 503 with Retry-After, the ingest queue's backpressure), or
an unexpected exception, which Tocsin masks as
"Internal server error." inside a 200 answer.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import graphql
import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

MASKED = "Internal server error."
_EVENT_TYPE = re.compile(r'(\btype:\s*)"(?:[^"\\]|\\.)*"')


def _object(fields: dict[str, graphql.ValueNode]) -> graphql.ObjectValueNode:
    return nodes.Object(
        [
            graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v)
            for k, v in fields.items()
        ]
    )


_json_leaves = st.one_of(
    st.just(nodes.Null),
    st.booleans().map(nodes.Boolean),
    st.integers().map(nodes.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.sampled_from(["1e400", "-1e400", "1e308", "-0.0"]).map(
        lambda text: graphql.FloatValueNode(value=text)
    ),
    st.text(max_size=40).map(nodes.String),
)
_names = st.from_regex(r"\A[_A-Za-z][_0-9A-Za-z]{0,12}\Z")
_json = st.recursive(
    _json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(nodes.List),
        st.dictionaries(_names, children, max_size=4).map(_object),
    ),
    max_leaves=12,
)
# Objects half of the time: metadata, headers and metadataMatch must be objects to get far.
schemathesis.graphql.scalar(
    "JSON", st.one_of(st.dictionaries(_names, _json, min_size=1, max_size=4).map(_object), _json)
)
schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(
        st.datetimes().map(lambda moment: nodes.String(moment.isoformat())),
        st.text(max_size=30).map(nodes.String),
    ),
)


@schemathesis.check
def tocsin_server_error(ctx: Any, response: Any, case: Any) -> None:
    """No 5xx, and no GraphQL error that hides an unexpected exception."""
    if response.status_code == 503 and "retry-after" in response.headers:
        return  # the bounded ingest queue pushing back, as documented: not a failure
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}: {response.text[:500]}")
    try:
        payload = response.json()
    except ValueError:
        return
    errors = payload.get("errors") if isinstance(payload, dict) else None
    for error in errors or []:
        code = (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None
        if isinstance(error, dict) and (
            error.get("message") == MASKED or code == "INTERNAL_SERVER_ERROR"
        ):
            raise AssertionError(f"unexpected exception behind {error}")


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Half of the emitEvent/emitEvents/explainRouting documents get a known event type."""
    body = case.body
    if not isinstance(body, str) or not re.search(r"\b(emitEvents?|explainRouting)\b", body):
        return
    if zlib.crc32(body.encode()) % 2:  # deterministic for a seed, unlike hash()
        return
    case.body = _EVENT_TYPE.sub(r'\1"refresh_failed"', body)

"""An emit document Strawberry has executed once is run by graphql-core directly the next
time it comes (schema/direct.py). The answer must be the one Strawberry gives: each case
sends the same document twice, first through Strawberry, then directly, and compares what
the client sees. Each document carries its own comment, so that its first sending is the
first time the (process-wide) schema sees that text."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse
from strawberry.extensions import SchemaExtension

import tocsin.schema.emit_fast_path as emit_fast_path
from tests.support import Api, make_settings, start_api
from tocsin.schema import TocsinSchema, schema
from tocsin.schema.direct import DirectEmits, RememberEmits
from tocsin.schema.limits import LONGEST_CACHED_QUERY
from tocsin.storage.enums import Role

EMIT = """mutation Emit($i: EmitEventInput!) {{ # {case}
  first: emitEvent(input: $i) {{
    __typename
    event {{ __typename type title detail metadata priority dedupKey }}
    errors {{ field code message }}
  }}
}}"""
EMIT_MANY = """mutation($i: [EmitEventInput!]!) {{ # {case}
  emitEvents(inputs: $i) {{ events {{ type title }} errors {{ field code message }} }}
}}"""
GOOD = {"type": "test", "title": "Build failed", "detail": "exit 2", "metadata": {"n": 1}}

_ID = re.compile(r'"(id|createdAt)": "[^"]*"')


def seen(response: httpx.Response) -> tuple[int, str | None, dict[str, Any]]:
    """What a client sees: the status, Retry-After, the body."""
    return response.status_code, response.headers.get("retry-after"), response.json()


async def twice(
    api: Api, query: str, variables: dict[str, Any], *, token: str | None = None
) -> tuple[Any, Any]:
    """The answers to ``query`` sent through Strawberry, then directly; the second must
    be the direct path's (Strawberry's execute is not called)."""
    assert schema.direct.document(query, None) is None, "the case's text must be new"
    first = seen(await api.post(query, variables, token=token))
    assert schema.direct.document(query, None) is not None, "an emit document is remembered"
    calls = 0
    strawberry_execute = schema.execute

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await strawberry_execute(*args, **kwargs)

    schema.execute = counting  # type: ignore[method-assign]
    try:
        second = seen(await api.post(query, variables, token=token))
    finally:
        del schema.execute
    assert calls == 0, "the second sending went through Strawberry"
    return first, second


async def test_an_accepted_emit_is_answered_alike(api: Api) -> None:
    first, second = await twice(api, EMIT.format(case="accepted"), {"i": GOOD})
    assert first == second
    status, _, body = second
    assert status == 200 and "errors" not in body
    assert body["data"]["first"] == {
        "__typename": "EmitEventPayload",
        "event": {
            "__typename": "Event",
            "type": "test",
            "title": "Build failed",
            "detail": "exit 2",
            "metadata": {"n": 1},
            "priority": "INFO",
            "dedupKey": None,
        },
        "errors": [],
    }
    stored = await api.ok('{ events(type: "test") { totalCount } }')
    assert stored["events"]["totalCount"] == 2


async def test_ids_differ_and_everything_else_is_alike(api: Api) -> None:
    query = """mutation($i: EmitEventInput!) { # ids
      emitEvent(input: $i) { event { id createdAt title } } }"""
    first, second = await twice(api, query, {"i": GOOD})
    assert (
        first[2]["data"]["emitEvent"]["event"]["id"]
        != second[2]["data"]["emitEvent"]["event"]["id"]
    )
    assert _ID.sub("", str(first).replace("'", '"')) == _ID.sub("", str(second).replace("'", '"'))


async def test_an_invalid_event_is_answered_with_the_same_payload_errors(api: Api) -> None:
    bad = {**GOOD, "type": "Not A Type!", "title": ""}
    first, second = await twice(api, EMIT.format(case="invalid"), {"i": bad})
    assert first == second
    errors = second[2]["data"]["first"]["errors"]
    assert ["type"] in [error["field"] for error in errors]
    assert second[2]["data"]["first"]["event"] is None


async def test_a_batch_with_one_bad_event_is_answered_alike(api: Api) -> None:
    inputs = [GOOD, {**GOOD, "type": "Bad Type"}]
    first, second = await twice(api, EMIT_MANY.format(case="batch"), {"i": inputs})
    assert first == second
    assert second[2]["data"]["emitEvents"]["errors"], second


async def test_a_variable_that_does_not_coerce_is_answered_alike(api: Api) -> None:
    query = EMIT.format(case="coercion")
    assert (await api.post(query, {"i": GOOD})).status_code == 200  # remembered
    missing = seen(await api.post(query, {}))
    wrong = seen(await api.post(query, {"i": {**GOOD, "priority": "URGENTEST"}}))
    for status, _, body in (missing, wrong):
        assert status == 200 and body["data"] is None
        [error] = body["errors"]
        assert error["message"].startswith("Variable '$i'")
    # and the same text with a fresh comment, through Strawberry, answers the same
    fresh = EMIT.format(case="coercion, fresh")
    assert seen(await api.post(fresh, {})) == missing
    assert seen(await api.post(fresh, {"i": {**GOOD, "priority": "URGENTEST"}})) == wrong


async def test_roles_are_held_alike(api: Api) -> None:
    viewer = await api.token(Role.VIEWER)
    first, second = await twice(api, EMIT.format(case="viewer"), {"i": GOOD}, token=viewer)
    assert first == second
    assert second[2]["data"] is None
    assert [e["extensions"]["code"] for e in second[2]["errors"]] == ["FORBIDDEN"]
    # and a remembered document does not pass a VIEWER that comes after an EMITTER
    emitter = await api.token(Role.EMITTER)
    query = EMIT.format(case="emitter then viewer")
    assert "errors" not in (await api.post(query, {"i": GOOD}, token=emitter)).json()
    refused = (await api.post(query, {"i": GOOD}, token=viewer)).json()
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    stored = await api.ok('{ events(type: "test") { totalCount } }')
    assert stored["events"]["totalCount"] == 1


async def test_fields_refused_beside_data_are_refused_alike(api: Api) -> None:
    emitter = await api.token(Role.EMITTER)
    query = """mutation($i: EmitEventInput!) { # beside data
      emitEvent(input: $i) { event { title deliveries { status } } } }"""
    first, second = await twice(api, query, {"i": GOOD}, token=emitter)
    assert first == second
    body = second[2]
    assert body["data"]["emitEvent"]["event"] == {"title": "Build failed", "deliveries": []}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["emitEvent", "event", "deliveries"], "FORBIDDEN")
    ]


async def test_an_internal_error_is_masked_and_logged_alike(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "canary-7f3a-secret-in-a-traceback"

    async def broken(*_: Any) -> Any:
        raise RuntimeError(canary)

    monkeypatch.setattr(emit_fast_path, "emit_one", broken)
    query = EMIT.format(case="internal error")
    with caplog.at_level(logging.ERROR):
        first, second = await twice(api, query, {"i": GOOD})
    assert first == second
    assert [e["message"] for e in second[2]["errors"]] == ["Internal server error."]
    assert canary not in str(second)
    # the error as raised is logged each time, for the operator
    logged = [
        record for record in caplog.records if canary in record.getMessage() + str(record.exc_info)
    ]
    assert len(logged) == 2


async def test_a_rate_limited_emit_is_refused_alike(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "data", database_url, emit_rate_limit=1)
    async for api in start_api(settings, run_worker=False):
        token = await api.token(Role.EMITTER, "busy")
        query = EMIT.format(case="rate limited")
        assert (await api.post(query, {"i": GOOD}, token=token)).status_code == 200
        first, second = await twice(
            api, EMIT.format(case="rate limited, refused"), {"i": GOOD}, token=token
        )
        assert first == second
        status, retry_after, body = second
        assert status == 429 and retry_after is not None and int(retry_after) >= 1
        assert [e["extensions"]["code"] for e in body["errors"]] == ["RATE_LIMITED"]


async def test_only_emit_operations_are_remembered(api: Api) -> None:
    others = [
        ("{ viewer { name } } # query", None),
        (
            'mutation { # mixed\n emitEvent(input: {type: "t", title: "x"}) { event { id } }\n'
            ' createCategory(input: {key: "k", name: "K"}) { errors { code } } }',
            None,
        ),
        (
            "mutation { # fragment\n ...F }\n fragment F on Mutation {"
            ' emitEvent(input: {type: "t", title: "x"}) { event { id } } }',
            None,
        ),
        (
            'mutation A { # two operations\n emitEvent(input: {type: "t", title: "x"}) '
            "{ event { id } } } query B { viewer { name } }",
            "B",
        ),
    ]
    for query, operation in others:
        response = await api.client.post(
            "/graphql",
            json={"query": query, "operationName": operation},
            headers={"Authorization": f"Bearer {api.admin_token}"},
        )
        assert response.status_code == 200, response.text
        assert schema.direct.document(query, operation) is None, query
    # a document that failed validation is never executed, so never remembered
    invalid = 'mutation { # invalid\n emitEvent(input: {type: "t"}) { event { id } } }'
    assert "errors" in (await api.gql(invalid))
    assert schema.direct.document(invalid, None) is None


def test_the_remembered_documents_are_bounded_least_recently_used_first() -> None:
    direct = DirectEmits(schema.direct._mask)
    direct.maxsize = 3
    texts = [
        f'mutation {{ emitEvent(input: {{type: "t{n}", title: "x"}}) {{ errors {{ code }} }} }}'
        for n in range(4)
    ]
    for text in texts[:3]:
        direct.remember(text, None, parse(text))
    assert direct.document(texts[0], None) is not None  # now the most recently used
    direct.remember(texts[3], None, parse(texts[3]))
    assert [direct.document(text, None) is not None for text in texts] == [True, False, True, True]


async def test_a_long_emit_text_is_not_remembered(api: Api) -> None:
    """Comments cost no token: without a bound, distinct long texts would fill memory."""
    padding = "# " + "x" * LONGEST_CACHED_QUERY + "\n"
    query = EMIT.format(case="long").replace("{ # long", "{ # long\n" + padding, 1)
    assert len(query) > LONGEST_CACHED_QUERY
    body = (await api.post(query, {"i": GOOD})).json()
    assert "errors" not in body and body["data"]["first"]["event"]["title"] == "Build failed"
    assert schema.direct.document(query, None) is None


def test_the_direct_path_knows_every_extension_of_the_schema() -> None:
    """A new schema extension may do something around execution that the direct path does
    not: adding one fails here until schema/direct.py does what it does (or does not need
    to), and this list says so."""
    extensions = [factory() for factory in schema.extensions]
    assert {type(extension).__name__ for extension in extensions} == {
        "BoundedParserCache",  # parsing: the remembered document was parsed once
        "BoundedValidationCache",  # validation: it was validated once, by every rule
        "CodedMaxTokensLimiter",  # parsing
        "AddValidationRules",  # validation
        "ErrorsBesideData",  # after execution: beside_data_errors in DirectEmits.execute
        "MaskErrors",  # after execution: anonymise_error in DirectEmits.execute
        "RememberEmits",  # feeds DirectEmits
    }
    # none wraps the resolvers, which the direct path calls without them
    assert [
        type(e).__name__ for e in extensions if type(e).resolve is not SchemaExtension.resolve
    ] == []
    assert isinstance(schema, TocsinSchema)
    assert any(isinstance(extension, RememberEmits) for extension in extensions)

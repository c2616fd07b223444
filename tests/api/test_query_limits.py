"""Acceptance: query cost limits. A fragment bomb, a 100-deep query and a 5 000-alias query
are refused before execution, in milliseconds, for every role, with
``extensions.code = "QUERY_TOO_COMPLEX"`` and a message naming the limit; a real server
answers the bomb at once and keeps answering /healthz; GraphiQL's introspection passes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from graphql import get_introspection_query

from tests.e2e.server import ADMIN_TOKEN, TocsinServer, e2e_database_url, server_env
from tests.support import Api, make_settings, new_database_url, start_api
from tocsin.schema import VALIDATION_CACHE_SIZE
from tocsin.schema.limits import LONGEST_CACHED_QUERY, BoundedParserCache, BoundedValidationCache
from tocsin.storage.enums import Role

# The bound is generous (the limits answer in milliseconds) so that a loaded machine does
# not fail the test; unmemoised limiters took minutes on the same document.
BOUND_SECONDS = 3.0


def fragment_bomb(levels: int = 39) -> str:
    """1.6 KB: F{n} spreads F{n-1} twice, so F39 expands to 2**39 fields."""
    fragments = ["fragment F0 on Viewer { name }"] + [
        f"fragment F{i} on Viewer {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    ]
    return f"query {{ viewer {{ ...F{levels} }} }} " + " ".join(fragments)


def nested(depth: int) -> str:
    """A valid query ``depth`` fields deep: channels → lastDelivery → event → deliveries →
    channel → lastDelivery → …"""
    cycle = ["lastDelivery", "event", "deliveries", "channel"]
    fields = ["channels"] + [cycle[i % 4] for i in range(depth - 1)]
    return "query { " + " { ".join(fields) + " { id" + " }" * depth + " }"


def many_aliases(count: int) -> str:
    return "query { " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"


def folded_aliases() -> str:
    """5 000 aliases in a short document: 50 aliases spread 10 times 10 times."""
    aliases = " ".join(f"a{i}: __typename" for i in range(50))
    return (
        "query { ...B ...B ...B ...B ...B ...B ...B ...B ...B ...B } "
        "fragment B on Query { ...A ...A ...A ...A ...A ...A ...A ...A ...A ...A } "
        f"fragment A on Query {{ {aliases} }}"
    )


HEAVY = {
    "fragment-bomb": (fragment_bomb(), "fragment spreads limit is 200"),
    "100-deep": (nested(100), "depth limit is 10"),
    "5000-aliases": (many_aliases(5000), "more than 5000 tokens"),
    "5000-aliases-folded": (folded_aliases(), "aliases limit is 50"),
}


@dataclass
class Setup:
    api: Api
    tokens: dict[Role, str]


@pytest.fixture(scope="module")
async def setup(
    template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Setup]:
    data_dir = tmp_path_factory.mktemp("limits") / "data"
    url = await new_database_url(template_database, data_dir)
    async for api in start_api(make_settings(data_dir, url), run_worker=False):
        tokens = {role: await api.token(role, name=f"limits {role.value}") for role in Role}
        yield Setup(api=api, tokens=tokens)


def too_complex(response: httpx.Response) -> list[str]:
    """The messages of a refusal: no data, every error QUERY_TOO_COMPLEX."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] is None
    assert body["errors"], body
    assert {e["extensions"]["code"] for e in body["errors"]} == {"QUERY_TOO_COMPLEX"}, body
    return [e["message"] for e in body["errors"]]


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
@pytest.mark.parametrize("name", list(HEAVY))
async def test_heavy_documents_are_refused_for_every_role(
    setup: Setup, name: str, role: Role
) -> None:
    query, names_the_limit = HEAVY[name]
    # when a token of any role sends the document
    started = time.perf_counter()
    response = await setup.api.post(query, token=setup.tokens[role])
    elapsed = time.perf_counter() - started
    # then it is refused at once, saying which limit
    messages = too_complex(response)
    assert any(names_the_limit in m for m in messages), messages
    assert elapsed < BOUND_SECONDS


async def test_each_limit_is_named(setup: Setup) -> None:
    api = setup.api
    [deep] = too_complex(await api.post(nested(11)))
    assert deep == "The operation is 11 fields deep; the depth limit is 10."
    [aliases] = too_complex(await api.post("query Wide " + many_aliases(51)[6:]))
    assert aliases == "'Wide' has 51 aliases; the aliases limit is 50."
    # 13 levels: 2**13 = 8192 fields and 16383 spreads, both over their limits
    messages = too_complex(await api.post(fragment_bomb(13)))
    assert messages == [
        "The operation spreads fragments 16383 times once expanded; "
        "the fragment spreads limit is 200.",
        "The operation has 8193 selections once fragments are expanded; "
        "the selections limit is 2000.",
    ]
    # 7 levels: 254 spreads (over 200), 129 selections
    [spreads] = too_complex(await api.post(fragment_bomb(7)))
    assert "fragment spreads limit is 200" in spreads
    # the parser's token limit has the same code
    [tokens] = too_complex(await api.post("query { viewer { " + "name " * 6000 + "} }"))
    assert "more than 5000 tokens" in tokens
    # and so has its nesting limit (a list literal 400 deep)
    deep = "[" * 400 + "1" + "]" * 400
    [nesting] = too_complex(
        await api.post(f'{{ channel(id: "x") {{ metadataMatch(a: {deep}) }} }}')
    )
    assert "nested too deeply" in nesting
    # while a plain syntax error has no code of the kind
    plain = (await api.post("{ viewer { ")).json()["errors"]
    assert [e.get("extensions", {}).get("code") for e in plain] == [None]


async def test_each_operation_is_measured_on_its_own(setup: Setup) -> None:
    # each operation is measured on its own: two operations of 30 aliases each pass
    thirty = " ".join(f"a{i}: __typename" for i in range(30))
    document = f"query One {{ {thirty} }} query Two {{ {thirty} }}"
    response = await setup.api.client.post(
        "/graphql",
        json={"query": document, "operationName": "Two"},
        headers={"Authorization": f"Bearer {setup.api.admin_token}"},
    )
    body = response.json()
    assert "errors" not in body, body
    assert len(body["data"]) == 30


async def test_queries_at_the_limits_pass(setup: Setup) -> None:
    api = setup.api
    assert (await api.ok(nested(10)))["channels"] == []
    assert len(await api.ok(many_aliases(50))) == 50
    # a bomb of 6 levels: 64 fields (merged into one by execution), 126 spreads
    assert (await api.ok(fragment_bomb(6)))["viewer"] == {"name": "admin"}


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
async def test_graphiql_introspection_passes(setup: Setup, role: Role) -> None:
    # given the introspection query GraphiQL sends, with every option it may turn on
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    # then every role gets the schema
    data = await setup.api.ok(query, token=setup.tokens[role])
    names = {t["name"] for t in data["__schema"]["types"]}
    assert {"Query", "Mutation", "Event", "Delivery"} <= names


async def test_introspection_is_depth_limited_too(setup: Setup) -> None:
    # fields → type → fields → … fans out: introspection counts towards the depth (only
    # ofType, a one-to-one unwrap, does not)
    # (graphql-core's own MaxIntrospectionDepthRule refuses it too, without a code)
    chain = "fields { name type { " * 5 + "name" + " } }" * 5
    body = await setup.api.gql(f"{{ __schema {{ types {{ {chain} }} }} }}")
    assert body["data"] is None
    coded = [e for e in body["errors"] if e.get("extensions", {}).get("code")]
    assert [e["extensions"]["code"] for e in coded] == ["QUERY_TOO_COMPLEX"]
    assert "depth limit is 10" in coded[0]["message"]
    unwrap = "ofType { " * 8 + "name" + " }" * 8
    data = await setup.api.ok(f'{{ __type(name: "Query") {{ fields {{ type {{ {unwrap} }} }} }} }}')
    assert data["__type"]["fields"]


# -- a real server -----------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_a_real_server_answers_the_bomb_at_once_and_stays_healthy(
    template_database: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = server_env(data_dir, database_url=await e2e_database_url(template_database, data_dir))
    async with TocsinServer(env, log_dir=tmp_path, args=("--no-worker",)) as server:
        health: list[tuple[int, float]] = []
        done = asyncio.Event()

        async def poll_health() -> None:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
                while not done.is_set() or not health:
                    started = time.perf_counter()
                    response = await client.get("/healthz")
                    health.append((response.status_code, time.perf_counter() - started))
                    await asyncio.sleep(0.01)

        async def send_bomb() -> tuple[httpx.Response, float]:
            async with server.client(ADMIN_TOKEN, timeout=30) as client:
                started = time.perf_counter()
                response = await client.post("/graphql", json={"query": fragment_bomb()})
                return response, time.perf_counter() - started

        # when the bomb is sent while /healthz is polled
        poller = asyncio.create_task(poll_health())
        try:
            response, elapsed = await send_bomb()
            done.set()
            await asyncio.wait_for(poller, timeout=30)
        finally:
            poller.cancel()
        # then the bomb is refused at once
        too_complex(response)
        assert elapsed < BOUND_SECONDS, f"the bomb took {elapsed:.1f}s"
        # and /healthz answered meanwhile, promptly every time
        assert health and {status for status, _ in health} == {200}
        assert max(seconds for _, seconds in health) < BOUND_SECONDS
        # and the server still serves queries
        assert (await server.ok("{ viewer { role } }"))["viewer"]["role"] == "ADMIN"


# -- the caches keep short texts only ------------------------------------------------------


def _long(text: str, n: int) -> str:
    """``text`` behind a comment that makes it longer than the caches keep (comments cost
    no token); ``n`` makes each one distinct."""
    return f"# {n} " + "x" * LONGEST_CACHED_QUERY + "\n" + text


async def test_long_texts_are_answered_but_not_kept_by_the_caches(api: Api) -> None:
    parse_cache = BoundedParserCache(maxsize=512).cached_parse_document
    validation_cache = BoundedValidationCache(
        maxsize=VALIDATION_CACHE_SIZE
    ).cached_validate_document
    kept = parse_cache.cache_info().currsize, validation_cache.cache_info().currsize
    # when distinct long texts come (each of a MiB would otherwise stay in memory)
    for n in range(3):
        assert (await api.ok(_long("{ viewer { role } }", n))) == {"viewer": {"role": "ADMIN"}}
    # then they were answered, and neither cache holds one more entry
    assert (parse_cache.cache_info().currsize, validation_cache.cache_info().currsize) == kept
    # while a short new text is kept by both (what the assertion above would see)
    await api.ok("{ viewer { name } } # short and new")
    assert parse_cache.cache_info().currsize == kept[0] + 1
    assert validation_cache.cache_info().currsize == kept[1] + 1


async def test_a_long_text_is_held_to_every_limit_all_the_same(api: Api) -> None:
    many_tokens = "{ " + " ".join(f"a{n}: viewer {{ name }}" for n in range(1200)) + " }"
    refused = await api.gql(_long(many_tokens, 0))
    assert refused["data"] is None
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["QUERY_TOO_COMPLEX"]
    invalid = await api.gql(_long("{ viewer { nosuchfield } }", 1))
    assert invalid["data"] is None and "nosuchfield" in invalid["errors"][0]["message"]

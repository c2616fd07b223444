"""Acceptance: who may call what. Every root Query and Mutation field is in ROLE_TABLE (a
test introspects the schema and fails on a field the table does not list); each role gets
its fields and a FORBIDDEN error on the others; a missing, unknown or revoked token gets
HTTP 401 UNAUTHENTICATED; tokens are listed, track their last use and are stored hashed.

The matrix shares one app per module: each case is one operation, and a refused one must
leave no trace (checked against what an admin sees before and after).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import graphql
import pytest
from sqlalchemy import text

import tocsin
from tests.support import Api, make_settings, new_database_url, start_api
from tocsin.storage.enums import Role

VIEWER, EDITOR, ADMIN, EMITTER = Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.EMITTER
READERS = frozenset({VIEWER, EDITOR, ADMIN})
EDITORS = frozenset({EDITOR, ADMIN})
ADMINS = frozenset({ADMIN})
EMITTERS = frozenset({EMITTER, ADMIN})
EVERYONE = frozenset(Role)
NO_SUCH_ID = "01deadbeef0000000000000000000000"
# Replaced by the id of a pending delivery the module's setup makes (an unknown id is now
# NOT_FOUND, an error: an allowed role must get an answer without one).
A_DELIVERY = "$A_DELIVERY"


@dataclass(frozen=True)
class Entry:
    """A minimal valid operation on one root field, and the roles that may run it."""

    operation: str
    roles: frozenset[Role]


# The contract's table (CONTRACT.md section 1), one row per root field.
QUERIES: dict[str, Entry] = {
    "viewer": Entry("{ viewer { name role } }", EVERYONE),
    "notificationStatus": Entry(
        "{ notificationStatus { configured canSendTest channelCount } }", READERS
    ),
    "channels": Entry("{ channels { id name } }", READERS),
    "channel": Entry(f'{{ channel(id: "{NO_SUCH_ID}") {{ id }} }}', READERS),
    "eventTypes": Entry("{ eventTypes { name } }", READERS),
    "explainRouting": Entry(
        'query { explainRouting(input: {type: "test", title: "role probe"}) '
        "{ channel { id } outcome reason } }",
        EDITORS,
    ),
    "event": Entry(f'{{ event(id: "{NO_SUCH_ID}") {{ id }} }}', EDITORS),
    "events": Entry("{ events(first: 5) { totalCount nodes { id } } }", EDITORS),
    "deliveries": Entry("{ deliveries(first: 5) { totalCount nodes { id } } }", EDITORS),
    "auditLog": Entry("{ auditLog(first: 5) { totalCount nodes { id } } }", ADMINS),
    "apiTokens": Entry("{ apiTokens { id name role } }", ADMINS),
}
MUTATIONS: dict[str, Entry] = {
    **{
        f"save{kind}Channel": Entry(
            f'mutation {{ save{kind}Channel(input: {{name: "probe"}}) '
            "{ channel { id } errors { code } } }",
            EDITORS,
        )
        for kind in ("Slack", "Webhook", "Email", "Discord", "Telegram", "Teams")
    },
    "deleteChannel": Entry(
        f'mutation {{ deleteChannel(id: "{NO_SUCH_ID}") {{ deletedId errors {{ code }} }} }}',
        EDITORS,
    ),
    "muteChannel": Entry(
        f'mutation {{ muteChannel(id: "{NO_SUCH_ID}", until: "2031-01-01T00:00:00+00:00") '
        "{ channel { id } errors { code } } }",
        EDITORS,
    ),
    "sendTest": Entry("mutation { sendTest { results { ok } errors { code } } }", EDITORS),
    "testSmtpConnection": Entry(
        "mutation { testSmtpConnection { ok stage error errors { code } } }", EDITORS
    ),
    "emitEvent": Entry(
        'mutation { emitEvent(input: {type: "test", title: "role probe"}) '
        "{ event { id } deduplicated errors { code } } }",
        EMITTERS,
    ),
    "emitEvents": Entry(
        'mutation { emitEvents(inputs: [{type: "test", title: "role probe"}]) '
        "{ events { id } errors { code } } }",
        EMITTERS,
    ),
    "retryDelivery": Entry(
        f'mutation {{ retryDelivery(id: "{A_DELIVERY}") {{ id status }} }}', EDITORS
    ),
    "registerEventType": Entry(
        'mutation { registerEventType(input: {name: "role_probe", category: "probe"}) { name } }',
        ADMINS,
    ),
    "createApiToken": Entry(
        'mutation { createApiToken(name: "role probe", role: VIEWER) '
        "{ token apiToken { id } errors { code } } }",
        ADMINS,
    ),
    "revokeApiToken": Entry(f'mutation {{ revokeApiToken(id: "{NO_SUCH_ID}") }}', ADMINS),
}
ROLE_TABLE: dict[str, dict[str, Entry]] = {"Query": QUERIES, "Mutation": MUTATIONS}
CASES = [
    pytest.param(root, field, role, id=f"{field}-{role.value}")
    for root, entries in ROLE_TABLE.items()
    for field in entries
    for role in Role
]
ALL_FIELDS = [
    pytest.param(root, field, id=field) for root, entries in ROLE_TABLE.items() for field in entries
]
INTROSPECT = "{ __schema { queryType { fields { name } } mutationType { fields { name } } } }"
# What an admin sees of everything a refused operation could have changed.
TRACES = """{ channels { id name updatedAt mutedUntil } events(first: 1) { totalCount }
  auditLog(first: 1) { totalCount } apiTokens { id name } eventTypes { name enabled } }"""


@dataclass
class Setup:
    api: Api
    tokens: dict[Role, str]
    revoked: str
    delivery_id: str

    def operation(self, entry: Entry) -> str:
        return entry.operation.replace(A_DELIVERY, self.delivery_id)


@pytest.fixture(scope="module")
async def setup(
    template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Setup]:
    data_dir = tmp_path_factory.mktemp("roles") / "data"
    url = await new_database_url(template_database, data_dir)
    async for api in start_api(make_settings(data_dir, url), run_worker=False):
        tokens = {role: await api.token(role, name=f"matrix {role.value}") for role in Role}
        revoked = await api.token(Role.ADMIN, name="revoked admin")
        listed = await api.ok("{ apiTokens { id name } }")
        [revoked_id] = [t["id"] for t in listed["apiTokens"] if t["name"] == "revoked admin"]
        answer = await api.ok(f'mutation {{ revokeApiToken(id: "{revoked_id}") }}')
        assert answer == {"revokeApiToken": True}
        yield Setup(api=api, tokens=tokens, revoked=revoked, delivery_id=await a_delivery(api))


async def a_delivery(api: Api) -> str:
    """A pending delivery (no worker runs): retrying it changes nothing."""
    save = """mutation($input: WebhookChannelInput!) { saveWebhookChannel(input: $input) {
      channel { id } errors { code } } }"""
    await api.ok(save, {"input": {"name": "matrix hook", "url": "http://127.0.0.1:9/hook"}})
    await api.ok('mutation { emitEvent(input: {type: "test", title: "matrix"}) { event { id } } }')
    nodes = (await api.ok("{ deliveries { nodes { id status } } }"))["deliveries"]["nodes"]
    assert [n["status"] for n in nodes] == ["PENDING"]
    delivery_id: str = nodes[0]["id"]
    return delivery_id


def root_fields_of_exported_schema() -> dict[str, set[str]]:
    sdl = (Path(tocsin.__file__).parent / "schema.graphql").read_text()
    schema = graphql.build_schema(sdl)
    assert schema.query_type is not None and schema.mutation_type is not None
    return {"Query": set(schema.query_type.fields), "Mutation": set(schema.mutation_type.fields)}


# -- the table covers the schema ---------------------------------------------------------


async def test_the_role_table_lists_every_root_field(setup: Setup) -> None:
    # given the live schema, by introspection, and the exported schema.graphql
    live = (await setup.api.ok(INTROSPECT))["__schema"]
    served = {
        "Query": {f["name"] for f in live["queryType"]["fields"]},
        "Mutation": {f["name"] for f in live["mutationType"]["fields"]},
    }
    exported = root_fields_of_exported_schema()
    for root, entries in ROLE_TABLE.items():
        # then every field either schema has is in the table: a new field cannot slip through
        missing = (served[root] | exported[root]) - set(entries)
        assert not missing, f"{root} fields with no row in ROLE_TABLE: {sorted(missing)}"
        # and the table names no field that the server does not have
        stale = set(entries) - served[root]
        assert not stale, f"ROLE_TABLE rows for {root} fields the server lacks: {sorted(stale)}"


def test_the_table_is_the_contracts() -> None:
    allowed = {
        role: sorted(
            f for entries in ROLE_TABLE.values() for f, e in entries.items() if role in e.roles
        )
        for role in Role
    }
    assert allowed[VIEWER] == sorted(
        ["viewer", "notificationStatus", "channels", "channel", "eventTypes"]
    )
    assert allowed[EMITTER] == sorted(["viewer", "emitEvent", "emitEvents"])
    assert set(allowed[EDITOR]) == set(allowed[VIEWER]) | {
        "saveSlackChannel",
        "saveWebhookChannel",
        "saveEmailChannel",
        "saveDiscordChannel",
        "saveTelegramChannel",
        "saveTeamsChannel",
        "deleteChannel",
        "muteChannel",
        "sendTest",
        "testSmtpConnection",
        "event",
        "events",
        "deliveries",
        "retryDelivery",
        "explainRouting",
    }
    assert set(allowed[ADMIN]) == {f for entries in ROLE_TABLE.values() for f in entries}


# -- the matrix --------------------------------------------------------------------------


@pytest.mark.parametrize(("root", "field", "role"), CASES)
async def test_each_role_may_call_exactly_its_fields(
    setup: Setup, root: str, field: str, role: Role
) -> None:
    api, entry = setup.api, ROLE_TABLE[root][field]
    before = await api.ok(TRACES)
    # when a token of this role runs the field's operation
    response = await api.post(setup.operation(entry), token=setup.tokens[role])
    assert response.status_code == 200, response.text
    body = response.json()
    errors = body.get("errors") or []
    if role in entry.roles:
        # then an allowed role gets an answer with no error at all
        assert errors == [], errors
        assert field in body["data"]
        if field == "viewer":
            assert body["data"]["viewer"]["role"] == role.value
    else:
        # then a refused role gets FORBIDDEN on that field, no data for it, and no trace
        assert [(e["path"], e["extensions"]["code"]) for e in errors] == [([field], "FORBIDDEN")]
        assert errors[0]["message"]
        assert (body.get("data") or {}).get(field) is None
        assert await api.ok(TRACES) == before


@pytest.mark.parametrize("auth", ["none", "empty", "not bearer", "unknown", "revoked"])
@pytest.mark.parametrize(("root", "field"), ALL_FIELDS)
async def test_without_a_valid_token_every_field_is_401(
    setup: Setup, root: str, field: str, auth: str
) -> None:
    headers = {
        "none": {},
        "empty": {"Authorization": "Bearer "},
        "not bearer": {"Authorization": f"Basic {setup.tokens[ADMIN]}"},
        "unknown": {"Authorization": "Bearer tcs_" + "x" * 43},
        "revoked": {"Authorization": f"Bearer {setup.revoked}"},
    }[auth]
    response = await setup.api.client.post(
        "/graphql", json={"query": setup.operation(ROLE_TABLE[root][field])}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"]
    assert body.get("data") is None


# -- tokens ------------------------------------------------------------------------------

TOKENS = "{ apiTokens { id name role createdAt lastUsedAt } }"
CREATE = """mutation($name: String!, $role: Role!) { createApiToken(name: $name, role: $role) {
  token apiToken { id name role createdAt lastUsedAt } errors { code } } }"""


async def test_api_tokens_lists_a_token_and_its_last_use(api: Api) -> None:
    # given a new token
    created = (await api.ok(CREATE, {"name": "ci-bot", "role": "EMITTER"}))["createApiToken"]
    assert created["errors"] == []
    token = created["token"]
    assert token
    # then it is listed, never used
    [listed] = [t for t in (await api.ok(TOKENS))["apiTokens"] if t["name"] == "ci-bot"]
    assert listed == created["apiToken"]
    assert listed["role"] == "EMITTER" and listed["lastUsedAt"] is None
    # when it is used
    assert (await api.ok("{ viewer { name role } }", token=token)) == {
        "viewer": {"name": "ci-bot", "role": "EMITTER"}
    }
    # then lastUsedAt is set, with an offset, not before it was created
    [used] = [t for t in (await api.ok(TOKENS))["apiTokens"] if t["name"] == "ci-bot"]
    assert used["lastUsedAt"] is not None
    last_used = datetime.fromisoformat(used["lastUsedAt"])
    assert last_used.utcoffset() is not None
    assert last_used >= datetime.fromisoformat(used["createdAt"])


async def test_a_revoked_token_is_unlisted_and_refused(api: Api) -> None:
    # given a working token
    created = (await api.ok(CREATE, {"name": "old", "role": "VIEWER"}))["createApiToken"]
    token, token_id = created["token"], created["apiToken"]["id"]
    assert (await api.ok("{ viewer { role } }", token=token))["viewer"]["role"] == "VIEWER"
    # when it is revoked
    revoke = "mutation($id: ID!) { revokeApiToken(id: $id) }"
    assert await api.ok(revoke, {"id": token_id}) == {"revokeApiToken": True}
    # then it is refused at once, no longer listed, and cannot be revoked again
    response = await api.post("{ viewer { role } }", token=token)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert token_id not in [t["id"] for t in (await api.ok(TOKENS))["apiTokens"]]
    assert await api.ok(revoke, {"id": token_id}) == {"revokeApiToken": False}


async def test_tokens_are_stored_only_as_hashes(api: Api) -> None:
    # given tokens made through the API and directly, and each one used once
    made = [
        (await api.ok(CREATE, {"name": f"hash {role}", "role": role}))["createApiToken"]["token"]
        for role in ("VIEWER", "ADMIN")
    ]
    values = [*made, await api.token(Role.EDITOR), api.admin_token]
    for value in values:
        await api.ok("{ viewer { name } }", token=value)
    # when the api_token table is read directly
    async with api.services.db.read() as session:
        rows = (await session.execute(text("SELECT * FROM api_token"))).mappings().all()
    assert len(rows) >= len(values)
    cells = [str(cell) for row in rows for cell in row.values() if cell is not None]
    # then no column holds a token, or even the random part of one
    for value in values:
        secret_part = value.removeprefix("tcs_")
        assert len(secret_part) >= 32
        assert not [cell for cell in cells if value in cell or secret_part in cell]
        assert not [cell for cell in cells if secret_part[:16] in cell]

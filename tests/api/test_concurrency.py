"""Read-modify-writes on PostgreSQL lose nothing when two of them meet.

Each test holds a lock on the row (from a connection of its own) until both writers are
under way, then lets them go in a known order. Without ``FOR UPDATE`` both read the old row
and the later UPDATE overwrites the earlier one; with it they take turns. SQLite lets one
writer at a time into the database (``Database.write``), so these meetings cannot happen
there: the tests run on PostgreSQL only.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.peers import HttpReceiver
from tests.pg_gate import gate
from tests.support import PG_URL, Api
from tocsin.settings import Settings
from tocsin.storage.keys import rotate_secrets
from tocsin.storage.secretbox import SecretBox

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="SQLite admits one writer at a time; writers meet on PostgreSQL only"
)

SIGNING_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SAVE = """mutation($input: WebhookChannelInput!) { saveWebhookChannel(input: $input) {
  channel { id ... on WebhookChannel { signingSecretSet headerNames } }
  errors { field code message } } }"""
READ = """query($id: ID!) { channel(id: $id) {
  ... on WebhookChannel { signingSecretSet headerNames } } }"""
LOCK_CHANNEL = "SELECT 1 FROM channel WHERE id = $1 FOR UPDATE"


async def _webhook(api: Api, receiver: HttpReceiver) -> str:
    data = await api.ok(SAVE, {"input": {"name": "hook", "url": receiver.url("/hook")}})
    assert data["saveWebhookChannel"]["errors"] == []
    channel_id: str = data["saveWebhookChannel"]["channel"]["id"]
    return channel_id


def _saved(body: dict[str, Any]) -> None:
    assert "errors" not in body, body["errors"]
    assert body["data"]["saveWebhookChannel"]["errors"] == [], body


async def test_two_editors_saving_different_secrets_of_one_channel_keep_both(
    api: Api, settings: Settings, receiver: HttpReceiver
) -> None:
    channel_id = await _webhook(api, receiver)
    assert settings.database_url is not None
    async with gate(settings.database_url, LOCK_CHANNEL, channel_id) as gate_:
        # given one editor saving a signing secret and another saving a header, at once
        signing = asyncio.create_task(
            api.gql(SAVE, {"input": {"id": channel_id, "signingSecret": SIGNING_SECRET}})
        )
        await gate_.until_waiting(1)
        headers = asyncio.create_task(
            api.gql(SAVE, {"input": {"id": channel_id, "headers": {"X-Team": "ops"}}})
        )
        await gate_.until_waiting(2)
    _saved(await signing)
    _saved(await headers)
    # then the channel has both
    channel = (await api.ok(READ, {"id": channel_id}))["channel"]
    assert channel == {"signingSecretSet": True, "headerNames": ["X-Team"]}
    # and a test message carries both
    await api.ok(
        "mutation($id: ID!) { sendTest(channelId: $id) { results { ok } } }", {"id": channel_id}
    )
    (request,) = receiver.requests_to("/hook")
    assert request.headers.get("x-team") == "ops"
    assert request.headers.get("webhook-signature", "").startswith("v1,")


async def test_a_key_rotation_during_a_save_keeps_the_saved_secret(
    api: Api, settings: Settings, receiver: HttpReceiver
) -> None:
    channel_id = await _webhook(api, receiver)
    assert settings.database_url is not None and settings.secret_keys is not None
    old = settings.secret_keys.get_secret_value()
    new = Fernet.generate_key().decode()
    # the procedure of the README: TOCSIN_SECRET_KEYS=new,old everywhere, then rotate
    api.services.box = SecretBox([new.encode(), old.encode()])
    async with gate(settings.database_url, LOCK_CHANNEL, channel_id) as gate_:
        # given an editor saving a signing secret, and `tocsin keys rotate` right behind it
        signing = asyncio.create_task(
            api.gql(SAVE, {"input": {"id": channel_id, "signingSecret": SIGNING_SECRET}})
        )
        await gate_.until_waiting(1)
        rotation = asyncio.create_task(rotate_secrets(api.services.db, api.services.box))
        await gate_.until_waiting(2)
    _saved(await signing)
    assert await rotation == 1
    # then test messages are signed: the rotation re-encrypted the saved secret, not the
    # one it had read before the save
    await api.ok(
        "mutation($id: ID!) { sendTest(channelId: $id) { results { ok } } }", {"id": channel_id}
    )
    (request,) = receiver.requests_to("/hook")
    assert request.headers.get("webhook-signature", "").startswith("v1,")


async def test_muting_a_channel_that_is_being_deleted_answers_not_found(
    api: Api, settings: Settings, receiver: HttpReceiver
) -> None:
    channel_id = await _webhook(api, receiver)
    assert settings.database_url is not None
    mute = """mutation($id: ID!) { muteChannel(id: $id, until: "2100-01-01T00:00:00Z") {
      channel { id } errors { code } } }"""
    async with gate(settings.database_url, LOCK_CHANNEL, channel_id) as gate_:
        # given a deletion of the channel, and a mute right behind it
        deleting = asyncio.create_task(
            api.gql(
                "mutation($id: ID!) { deleteChannel(id: $id) { deletedId } }", {"id": channel_id}
            )
        )
        await gate_.until_waiting(1)
        muting = asyncio.create_task(api.gql(mute, {"id": channel_id}))
        await gate_.until_waiting(2)
    assert (await deleting)["data"]["deleteChannel"]["deletedId"] == channel_id
    # then the mute finds no channel (rather than an internal error)
    muted = await muting
    assert "errors" not in muted, muted["errors"]
    assert muted["data"]["muteChannel"] == {"channel": None, "errors": [{"code": "NOT_FOUND"}]}


async def test_two_editors_deleting_one_channel_delete_it_once(
    api: Api, settings: Settings, receiver: HttpReceiver
) -> None:
    channel_id = await _webhook(api, receiver)
    assert settings.database_url is not None
    delete = "mutation($id: ID!) { deleteChannel(id: $id) { deletedId errors { code } } }"
    async with gate(settings.database_url, LOCK_CHANNEL, channel_id) as gate_:
        first = asyncio.create_task(api.gql(delete, {"id": channel_id}))
        await gate_.until_waiting(1)
        second = asyncio.create_task(api.gql(delete, {"id": channel_id}))
        await gate_.until_waiting(2)
    # then the first deletes it, and the second finds nothing to delete (not a 500)
    assert (await first)["data"]["deleteChannel"] == {"deletedId": channel_id, "errors": []}
    answer = await second
    assert "errors" not in answer, answer["errors"]
    assert answer["data"]["deleteChannel"] == {"deletedId": None, "errors": [{"code": "NOT_FOUND"}]}


async def test_two_admins_registering_one_new_event_type_both_succeed(
    api: Api, settings: Settings
) -> None:
    assert settings.database_url is not None
    register = """mutation($input: EventTypeInput!) { registerEventType(input: $input) {
      name description defaultPriority } }"""
    insert = (
        "INSERT INTO event_type (name, category, description, default_priority, enabled,"
        " built_in) VALUES ($1, 'custom', '', 'MEDIUM', true, false)"
    )
    # given the type is being created by someone else (uncommitted), so that both admins
    # find it missing and both create it
    async with gate(settings.database_url, insert, "backup_failed") as gate_:
        described = asyncio.create_task(
            api.gql(register, {"input": {"name": "backup_failed", "description": "backups"}})
        )
        await gate_.until_waiting(1)
        prioritised = asyncio.create_task(
            api.gql(register, {"input": {"name": "backup_failed", "defaultPriority": "HIGH"}})
        )
        await gate_.until_waiting(2)
    # then both succeed, and the type has both changes
    for body in (await described, await prioritised):
        assert "errors" not in body, body["errors"]
    types = (await api.ok("{ eventTypes { name description defaultPriority } }"))["eventTypes"]
    assert {"name": "backup_failed", "description": "backups", "defaultPriority": "HIGH"} in types


async def test_two_admins_revoking_one_token_revoke_it_once(api: Api, settings: Settings) -> None:
    assert settings.database_url is not None
    created = await api.ok(
        'mutation { createApiToken(name: "ci", role: EMITTER) { apiToken { id } } }'
    )
    token_id = created["createApiToken"]["apiToken"]["id"]
    revoke = "mutation($id: ID!) { revokeApiToken(id: $id) }"
    lock = "SELECT 1 FROM api_token WHERE id = $1 FOR UPDATE"
    async with gate(settings.database_url, lock, token_id) as gate_:
        first = asyncio.create_task(api.ok(revoke, {"id": token_id}))
        await gate_.until_waiting(1)
        second = asyncio.create_task(api.ok(revoke, {"id": token_id}))
        await gate_.until_waiting(2)
    # then one of them revoked it, the other found it revoked already; one audit entry
    assert [(await first)["revokeApiToken"], (await second)["revokeApiToken"]] == [True, False]
    audit = await api.ok('{ auditLog(action: "token.revoke") { totalCount } }')
    assert audit["auditLog"]["totalCount"] == 1


async def test_two_editors_retrying_one_failed_delivery_retry_it_once(
    api: Api, settings: Settings, receiver: HttpReceiver
) -> None:
    # given a delivery that failed (the app runs no worker here: it is failed by hand)
    await _webhook(api, receiver)
    emitted = await api.ok(
        'mutation { emitEvent(input: {type: "refresh_failed", title: "t"}) { event { id } } }'
    )
    event_id = emitted["emitEvent"]["event"]["id"]
    assert settings.database_url is not None
    import asyncpg

    connection = await asyncpg.connect(
        settings.database_url.replace("postgresql+asyncpg", "postgresql")
    )
    try:
        await connection.execute(
            "UPDATE delivery SET status = 'FAILED', next_attempt_at = NULL WHERE event_id = $1",
            event_id,
        )
    finally:
        await connection.close()
    listed = await api.ok("{ deliveries { nodes { id status } } }")
    ((delivery_id, status),) = [(d["id"], d["status"]) for d in listed["deliveries"]["nodes"]]
    assert status == "FAILED"
    retry = "mutation($id: ID!) { retryDelivery(id: $id) { status } }"
    lock = "SELECT 1 FROM delivery WHERE id = $1 FOR UPDATE"
    # when two editors retry it at once
    async with gate(settings.database_url, lock, delivery_id) as gate_:
        first = asyncio.create_task(api.ok(retry, {"id": delivery_id}))
        await gate_.until_waiting(1)
        second = asyncio.create_task(api.ok(retry, {"id": delivery_id}))
        await gate_.until_waiting(2)
    # then both see it queued again, and it was retried once: one audit entry
    for body in (await first, await second):
        assert body["retryDelivery"]["status"] == "PENDING"
    audit = await api.ok('{ auditLog(action: "delivery.retry") { totalCount } }')
    assert audit["auditLog"]["totalCount"] == 1

"""Secrets are write-only: (a) no output type of the schema has a field that could return
one; (b) a marker stored in every kind of secret never comes back — not in any response,
audit entry or log line, and not in plaintext in the database."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLUnionType,
    get_named_type,
)
from sqlalchemy import select
from sqlmodel import SQLModel

from tests.peers import HttpReceiver, LocalCA, SmtpServer
from tests.support import PG_URL, Api, make_settings, start_api
from tocsin.schema import schema
from tocsin.settings import Settings
from tocsin.storage.channel_secrets import decrypt_secrets
from tocsin.storage.enums import Role
from tocsin.storage.tables import ChannelRow

# -- (a) the schema ------------------------------------------------------------------------

SECRET_NAME = re.compile(
    r"webhook_?url|url|signing_?secret|headers|password|bot_?token|token|secret", re.I
)
# Leaf fields whose names sound secret but are safe, and why.
SAFE_SECRET_NAMES = {
    # the one-time value of a token just created: shown once, stored only as a hash
    ("CreateApiTokenPayload", "token"),
    # the custom headers' names; their values are the secret part
    ("WebhookChannel", "headerNames"),
}
# Every field of a channel that can hold free text (String, ID, JSON), reviewed one by one:
# none of them is a secret. A new one fails the test until it is reviewed and added here.
CHANNEL_TEXT_FIELDS = {"id", "name", "eventTypes", "eventCategories", "metadataMatch"}
KIND_TEXT_FIELDS = {
    "SlackChannel": {"webhookUrlHint", "channel"},
    "DiscordChannel": {"webhookUrlHint"},
    "WebhookChannel": {"urlHint", "headerNames"},
    "EmailChannel": {"to", "smtpHost", "username", "fromAddress", "fromName"},
    "TelegramChannel": {"chatId"},
    "TeamsChannel": {"webhookUrlHint"},
}
TEXT_SCALARS = {"String", "ID", "JSON"}
CANNOT_HOLD_TEXT = {"Boolean", "Int", "Float", "DateTime"}

Composite = GraphQLObjectType | GraphQLInterfaceType


def output_types() -> dict[str, Composite]:
    """Every object and interface type reachable from Query, Mutation and Subscription
    (through field types, interfaces' implementations and unions' members)."""
    graphql_schema = schema._schema
    found: dict[str, Composite] = {}
    pending: list[GraphQLNamedType] = [graphql_schema.query_type, graphql_schema.mutation_type]
    if graphql_schema.subscription_type is not None:
        pending.append(graphql_schema.subscription_type)
    while pending:
        current = pending.pop()
        if current.name in found:
            continue
        if isinstance(current, GraphQLUnionType):
            pending.extend(current.types)
            continue
        if not isinstance(current, Composite):
            continue
        found[current.name] = current
        if isinstance(current, GraphQLInterfaceType):
            pending.extend(graphql_schema.get_possible_types(current))
        pending.extend(current.interfaces)
        pending.extend(get_named_type(field.type) for field in current.fields.values())
    return found


def test_the_walk_reaches_every_output_type() -> None:
    everything = {
        name
        for name, type_ in schema._schema.type_map.items()
        if isinstance(type_, Composite) and not name.startswith("__")
    }
    walked = set(output_types())
    assert walked == everything
    assert {"Channel", *KIND_TEXT_FIELDS, "AuditEntry", "ChannelTestResult"} <= walked


def test_no_output_field_can_return_a_secret() -> None:
    offending = []
    for type_name, type_ in output_types().items():
        for field_name, field in type_.fields.items():
            leaf = get_named_type(field.type)
            if isinstance(leaf, Composite | GraphQLUnionType):
                continue  # its own fields are checked where the walk reaches its type
            if isinstance(leaf, GraphQLEnumType) or leaf.name in CANNOT_HOLD_TEXT:
                continue  # e.g. the *Set flags: whether a secret is stored, never its value
            if not SECRET_NAME.search(field_name):
                continue
            if field_name.endswith("Hint") and leaf.name == "String":
                continue  # scheme, host and the last 4 characters, by design
            if (type_name, field_name) in SAFE_SECRET_NAMES:
                continue
            offending.append(f"{type_name}.{field_name}: {field.type}")
    assert offending == []


def test_channel_text_fields_are_the_reviewed_ones() -> None:
    types = output_types()
    channel = types["Channel"]
    assert isinstance(channel, GraphQLInterfaceType)
    kinds = {t.name for t in schema._schema.get_possible_types(channel)}
    assert kinds == set(KIND_TEXT_FIELDS), "a new channel kind: review its fields here"
    for name in ["Channel", *sorted(kinds)]:
        text_fields = {
            field_name
            for field_name, field in types[name].fields.items()
            if get_named_type(field.type).name in TEXT_SCALARS
        }
        allowed = CHANNEL_TEXT_FIELDS | KIND_TEXT_FIELDS.get(name, set())
        assert text_fields <= allowed, f"{name}: unreviewed text fields"


# -- (b) the canary ------------------------------------------------------------------------

MARK = "CANARY7f3a"
SIGNING = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # base64 holds no marker
BOT = f"123456789:AA{MARK}" + "X" * 25
SLACK_BOT = f"xoxb-1234567890-1234567890-{MARK}abcdef"
SENDGRID_KEY = f"SG.{MARK}-sendgrid-id.{MARK}-" + "x" * 40
KIND_OF = {"SendGrid": "Email"}
"Inputs named other than their kind: a SendGrid channel is an e-mail channel."
PEER_LOGGERS = ("uvicorn", "mail.log")  # the test's own receivers, not Tocsin

FIELDS = """
  id kind name enabled configured eventTypes minPriority metadataMatch mode mutedUntil
  maxRetries createdAt updatedAt
  lastTest { ok statusCode error latencyMs testedAt channel { id name } }
  lastDelivery { id lastError }
  ... on SlackChannel { webhookUrlSet webhookUrlHint botTokenSet channel }
  ... on DiscordChannel { webhookUrlSet webhookUrlHint }
  ... on WebhookChannel { urlSet urlHint signingSecretSet headerNames }
  ... on EmailChannel {
    to smtpHost smtpPort security username passwordSet fromAddress fromName verifyTls
    provider sendgridApiKeySet }
  ... on TelegramChannel { botTokenSet chatId }
  ... on TeamsChannel { webhookUrlSet webhookUrlHint }
"""
EVERYTHING = f"""{{
  channels {{ {FIELDS} }}
  notificationStatus {{
    configured canSendTest channelCount pendingDeliveries failedDeliveries }}
  auditLog(first: 100) {{ totalCount nodes {{ id at actor action target details }} }}
  apiTokens {{ id name role }}
  eventTypes {{ name }}
  events(first: 50) {{ nodes {{ id title detail metadata }} }}
  deliveries(first: 50) {{ nodes {{ id lastError attempts {{ error }} }} }}
}}"""


def save_mutation(kind: str) -> str:
    kind = KIND_OF.get(kind, kind)
    return (
        f"mutation($input: {kind}ChannelInput!) {{ save: save{kind}Channel(input: $input) "
        f"{{ channel {{ {FIELDS} }} errors {{ field code message }} }} }}"
    )


def echo_body(path: str) -> str:
    """What a chatty receiver answers: the secret path, everywhere an error is read."""
    text = f"no hook at {path}"
    return json.dumps({"ok": False, "error": text, "description": text, "message": text})


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(
        formatter.format(record)
        for record in caplog.records
        if not record.name.startswith(PEER_LOGGERS)
    )


async def database_text(settings: Settings, api: Api) -> str:
    """Every row of every table, as text (what a database dump would show)."""
    rows = []
    async with api.services.db.read() as session:
        for table in SQLModel.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                rows.append(repr(tuple(row)))
    return "\n".join(rows)


def sqlite_bytes(settings: Settings) -> bytes:
    path = Path(settings.sqlalchemy_url.split("///", 1)[1])
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


async def test_a_marked_secret_of_every_kind_never_comes_back(
    settings: Settings, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    async with HttpReceiver() as receiver, SmtpServer(ca=LocalCA(), mode="TLS") as smtp:
        paths = {
            "Slack": f"/services/T0/B0/{MARK}slack/tail",
            "Discord": f"/api/webhooks/1/{MARK}discord/tail",
            "Webhook": f"/hook/{MARK}hook/tail",
            "Telegram": f"/bot{BOT}/sendMessage",
            "Teams": f"/workflows/1/triggers/manual/{MARK}teams/tail",
        }
        for path in paths.values():
            receiver.respond(
                path, 500, body=echo_body(path), headers={"Content-Type": "application/json"}
            )
        receiver.respond("/chat.postMessage", 200, body=echo_body(f"invalid_auth {SLACK_BOT}"))
        receiver.respond("/v3/mail/send", 401, body=echo_body(f"Bearer {SENDGRID_KEY}"))
        app_settings = make_settings(
            settings.data_dir,
            settings.sqlalchemy_url,
            telegram_api_base=receiver.base_url,
            slack_api_base=receiver.base_url,
            sendgrid_api_base=receiver.base_url,
        )
        inputs: dict[str, dict[str, Any]] = {
            "Slack": {"webhookUrl": receiver.url(paths["Slack"])},
            "Discord": {"webhookUrl": receiver.url(paths["Discord"])},
            "Webhook": {
                "url": receiver.url(paths["Webhook"]),
                "signingSecret": SIGNING,
                "headers": {"X-Api-Key": f"key-{MARK}-header", "X-Team": "data"},
            },
            "Email": {
                "to": ["ops@example.com"],
                "smtpHost": smtp.host,
                "smtpPort": smtp.port,
                "security": "TLS",
                "verifyTls": False,
                "username": "tocsin@example.com",
                "password": f"pw-{MARK}-smtp",
            },
            "Telegram": {"botToken": BOT, "chatId": "-1001234567890"},
            "Teams": {"webhookUrl": receiver.url(paths["Teams"])},
            "Slack bot": {"botToken": SLACK_BOT, "channel": "C0123ABCD"},
            "SendGrid": {
                "provider": "SENDGRID",
                "to": ["ops@example.com"],
                "fromAddress": "tocsin@example.com",
                "sendgridApiKey": SENDGRID_KEY,
            },
        }
        responses: list[str] = []
        async for api in start_api(app_settings, run_worker=False):
            viewer = await api.token(Role.VIEWER)

            async def post(
                query: str,
                variables: dict[str, Any] | None = None,
                token: str | None = None,
                api: Api = api,
            ) -> dict[str, Any]:
                response = await api.post(query, variables, token=token)
                responses.append(response.text)
                body: dict[str, Any] = response.json()
                return body

            # given a channel of each kind holding a marked secret
            ids: dict[str, str] = {}
            for kind, data in inputs.items():
                mutation = save_mutation(kind.split()[0])  # "Slack bot" saves a Slack channel
                saved = (await post(mutation, {"input": data}))["data"]["save"]
                assert saved["errors"] == [], saved
                assert saved["channel"]["configured"] is True
                ids[kind] = saved["channel"]["id"]
            async with api.services.db.read() as session:
                rows = (await session.scalars(select(ChannelRow))).all()
                stored = {row.id: decrypt_secrets(api.services.box, row) for row in rows}
            assert sum(MARK in json.dumps(s) for s in stored.values()) == 8

            # when updates that fail carry the marker
            failing: list[tuple[str, dict[str, Any]]] = [
                ("Slack", {"id": ids["Slack"], "webhookUrl": f"ftp://hooks.example.com/{MARK}"}),
                ("Slack", {"webhookUrl": f"https://hooks.example.com/{MARK}/x", "maxRetries": 99}),
                ("Slack", {"id": ids["Slack"], "webhookUrl": f"https://10.1.2.3/{MARK}/x"}),
                ("Slack", {"id": ids["Slack"], "webhookUrl": f"https://a b/{MARK}"}),
                ("Discord", {"id": ids["Discord"], "webhookUrl": f"https://u:{MARK}@x.com/1"}),
                ("Webhook", {"id": ids["Webhook"], "headers": {"X-Api-Key": f"{MARK}\r\nX: 1"}}),
                ("Webhook", {"id": ids["Webhook"], "headers": {"Host": MARK}}),
                ("Webhook", {"id": ids["Webhook"], "signingSecret": f"whsec_{MARK}"}),
                ("Webhook", {"id": ids["Webhook"], "url": f"https://r.example.com/{MARK}" * 200}),
                ("Telegram", {"id": ids["Telegram"], "botToken": f"{MARK}:{MARK}"}),
                ("Email", {"id": ids["Email"], "password": MARK * 200}),
                ("Teams", {"id": ids["Teams"], "webhookUrl": f"http://teams.example.com/{MARK}"}),
                ("Slack", {"id": ids["Slack bot"], "botToken": f"xoxp-1-2-{MARK}"}),
                ("Slack", {"id": ids["Slack bot"], "botToken": f"{SLACK_BOT}\r\nX: 1"}),
                ("SendGrid", {"id": ids["SendGrid"], "sendgridApiKey": f"SG.{MARK}"}),
                ("SendGrid", {"id": ids["SendGrid"], "sendgridApiKey": f"SG.{MARK}.{MARK} x"}),
            ]
            for kind, data in failing:
                body = await post(save_mutation(kind), {"input": data})
                assert body["data"]["save"]["channel"] is None
                assert body["data"]["save"]["errors"], (kind, data)
            # and requests that GraphQL itself refuses carry it too
            slack = save_mutation("Slack")
            refused = [
                (slack, {"input": {"webhookUrl": f"https://h.example.com/{MARK}", "bogus": 1}}),
                (slack, {"input": {"webhookUrl": f"https://h.example.com/{MARK}", "name": 5}}),
                (slack, {"input": {"maxRetries": MARK}}),
                (slack, {"input": [f"https://h.example.com/{MARK}"]}),
                (
                    'mutation { saveSlackChannel(input: {webhookUrl: "https://h.example.com/'
                    + MARK
                    + '", bogus: 1}) { errors { code } } }',
                    None,
                ),
                (
                    f'mutation {{ saveSlackChannel(input: {{maxRetries: "{MARK}"}}) {{ id }} }}',
                    None,
                ),
                (f'mutation {{ saveSlackChannel(input: "{MARK}") {{ "{MARK}" }} }}', None),
            ]
            for query, variables in refused:
                body = await post(query, variables)
                assert body["errors"], query
            forbidden = await post(
                slack, {"input": {"webhookUrl": inputs["Slack"]["webhookUrl"]}}, token=viewer
            )
            assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
            anonymous = await api.client.post(
                "/graphql", json={"query": slack, "variables": {"input": inputs["Slack"]}}
            )
            assert anonymous.status_code == 401
            responses.append(anonymous.text)

            # then nothing stored changed
            async with api.services.db.read() as session:
                rows = (await session.scalars(select(ChannelRow))).all()
                assert {r.id: decrypt_secrets(api.services.box, r) for r in rows} == stored

            # when every channel is tested (the receivers echo the secret paths back)
            tested = (
                await post(
                    "mutation { sendTest { results { ok statusCode error channel { id } } "
                    "errors { code } } }"
                )
            )["data"]["sendTest"]
            assert len(tested["results"]) == 8
            assert not any(r["ok"] for r in tested["results"])
            rest = await api.client.post(
                "/api/notifications/test", headers={"Authorization": f"Bearer {api.admin_token}"}
            )
            assert rest.status_code == 200
            responses.append(rest.text)
            # (the secrets did reach their destinations: the marker travelled where it should)
            assert receiver.requests_to(paths["Slack"])
            assert receiver.requests_to(paths["Telegram"])
            assert receiver.requests_to(paths["Teams"])
            [bot, *_] = receiver.requests_to("/chat.postMessage")
            assert bot.headers["authorization"] == f"Bearer {SLACK_BOT}"
            [mail, *_] = receiver.requests_to("/v3/mail/send")
            assert mail.headers["authorization"] == f"Bearer {SENDGRID_KEY}"
            [hook, *_] = receiver.requests_to(paths["Webhook"])
            assert hook.headers["x-api-key"] == f"key-{MARK}-header"
            assert smtp.failed_logins >= 1  # the marked password was tried

            # and everything is read back, as every role that may read it
            for token in (None, viewer):
                await post(
                    "{ channels { id } notificationStatus { configured channelCount } }",
                    token=token,
                )
            everything = await post(EVERYTHING)
            assert "errors" not in everything, everything
            assert len(everything["data"]["channels"]) == 8
            assert everything["data"]["auditLog"]["totalCount"] >= 7
            for channel_id in ids.values():
                one = await post(
                    f"query($id: ID!) {{ channel(id: $id) {{ {FIELDS} }} }}", {"id": channel_id}
                )
                assert one["data"]["channel"]["id"] == channel_id
                assert one["data"]["channel"]["lastTest"]["ok"] is False

            # then the marker is in no response
            leaking = [text for text in responses if MARK in text]
            assert leaking == []
            # not in any audit entry
            assert MARK not in json.dumps(everything["data"]["auditLog"])
            # not in plaintext in the database
            assert MARK not in await database_text(app_settings, api)
            if not PG_URL:
                assert MARK.encode() not in sqlite_bytes(app_settings)
    # and in no log line of the whole run
    assert caplog.records, "nothing was logged at all: is capturing working?"
    assert MARK not in log_text(caplog)

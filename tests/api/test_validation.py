"""Acceptance: every input rule answers a ``UserError`` with the right ``field`` path and
``code``, nothing is stored when any rule fails, and no message repeats a submitted secret.

The cases share one app per module (each test compares what is stored before and after,
so it does not need a database of its own); a second app runs with no private network
allowed at all.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support import Api, make_settings, new_database_url, start_api

KINDS = ("Slack", "Webhook", "Email", "Discord", "Telegram")
FIELDS = """
  id kind name enabled configured eventTypes minPriority metadataMatch mode mutedUntil
  maxRetries createdAt updatedAt
  ... on SlackChannel { webhookUrlSet webhookUrlHint }
  ... on DiscordChannel { webhookUrlSet webhookUrlHint }
  ... on WebhookChannel { urlSet urlHint signingSecretSet headerNames }
  ... on EmailChannel {
    to smtpHost smtpPort security username passwordSet fromAddress fromName verifyTls }
  ... on TelegramChannel { botTokenSet chatId }
"""
SAVE = {
    kind: f"""mutation($input: {kind}ChannelInput!) {{
      save: save{kind}Channel(input: $input) {{
        channel {{ {FIELDS} }} errors {{ field code message }} }} }}"""
    for kind in KINDS
}
# what a client sees of every stored channel: a refused save must leave it unchanged
STORED = f"{{ channels {{ {FIELDS} }} }}"
MUTE = """mutation($id: ID!, $until: DateTime) { muteChannel(id: $id, until: $until) {
  channel { id mutedUntil } errors { field code message } } }"""
DELETE = "mutation($id: ID!) { deleteChannel(id: $id) { deletedId errors { field code message } } }"

# the secret fields that hold a destination URL, per kind
URL_FIELDS = [("Slack", "webhookUrl"), ("Webhook", "url"), ("Discord", "webhookUrl")]
SIGNING = "whsec_" + base64.b64encode(b"k" * 32).decode()
BOT = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
CANARY = "c4n4ry-S3CR3T-d0-not-echo"


@pytest.fixture(scope="module")
async def api(
    template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """The app with the test settings (127.0.0.0/8 is an allowed private network)."""
    data_dir = tmp_path_factory.mktemp("validation") / "data"
    url = await new_database_url(template_database, data_dir)
    async for value in start_api(make_settings(data_dir, url), run_worker=False):
        yield value


@pytest.fixture(scope="module")
async def strict_api(
    template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """The app as deployed by default: no private, loopback or link-local address allowed."""
    data_dir = tmp_path_factory.mktemp("strict") / "data"
    url = await new_database_url(template_database, data_dir)
    settings = make_settings(data_dir, url, allowed_private_networks=())
    async for value in start_api(settings, run_worker=False):
        yield value


# -- helpers -----------------------------------------------------------------------------


async def stored(api: Api) -> dict[str, Any]:
    """Every stored channel, every field."""
    return await api.ok(STORED)


async def assert_unchanged(api: Api, channel: dict[str, Any]) -> None:
    """The channel reads back exactly as ``channel`` (secrets' *Set flags and hints included)."""
    read = await api.ok(f'{{ channel(id: "{channel["id"]}") {{ {FIELDS} }} }}')
    assert read["channel"] == channel


async def save(api: Api, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = (await api.ok(SAVE[kind], {"input": data}))["save"]
    return payload


async def create(api: Api, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    payload = await save(api, kind, data)
    assert payload["errors"] == [], payload["errors"]
    channel: dict[str, Any] = payload["channel"]
    return channel


def problems(payload: dict[str, Any]) -> list[tuple[list[str] | None, str]]:
    assert all(error["message"].strip() for error in payload["errors"]), payload["errors"]
    return [(error["field"], error["code"]) for error in payload["errors"]]


async def assert_refused(
    api: Api, kind: str, data: dict[str, Any], field: list[str], code: str
) -> dict[str, Any]:
    """Saving ``data`` answers exactly one UserError (field, code) and stores nothing."""
    before = await stored(api)
    payload = await save(api, kind, data)
    assert payload["channel"] is None
    assert problems(payload) == [(field, code)]
    assert await stored(api) == before
    return payload


# -- destination URLs --------------------------------------------------------------------

BAD_URLS = [
    # scheme
    ("ftp://example.com/hook", "URL_SCHEME_NOT_ALLOWED"),
    ("http://receiver.example.com/hook", "URL_SCHEME_NOT_ALLOWED"),
    ("http://93.184.216.34/hook", "URL_SCHEME_NOT_ALLOWED"),
    # shape
    ("https:///no-host", "INVALID_URL"),
    ("garbage", "INVALID_URL"),
    ("hooks.example.com/no-scheme", "INVALID_URL"),
    ("https://exa mple.com/hook", "INVALID_URL"),
    ("https://example.com/hook\r\nX-Injected: 1", "INVALID_URL"),
    ("https://example.com:99999/hook", "INVALID_URL"),
    ("https://bad_host!.example.com/hook", "INVALID_URL"),
    ("https://user:password@example.com/hook", "INVALID_URL"),
    ("https://example.com/" + "a" * 2029, "URL_TOO_LONG"),  # 2049 characters
    # addresses named literally
    ("https://10.0.0.5/x", "DESTINATION_NOT_ALLOWED"),
    ("http://10.0.0.5/x", "DESTINATION_NOT_ALLOWED"),
    ("https://192.168.1.20:8443/x", "DESTINATION_NOT_ALLOWED"),
    ("https://100.64.0.1/x", "DESTINATION_NOT_ALLOWED"),
    ("https://169.254.169.254/", "DESTINATION_NOT_ALLOWED"),
    ("https://0.0.0.0/x", "DESTINATION_NOT_ALLOWED"),
    ("https://224.0.0.1/x", "DESTINATION_NOT_ALLOWED"),
    ("https://[::1]/x", "DESTINATION_NOT_ALLOWED"),
    ("https://[fe80::1]/x", "DESTINATION_NOT_ALLOWED"),
    ("https://[fd00::1]/x", "DESTINATION_NOT_ALLOWED"),
    ("https://[::ffff:10.0.0.1]/", "DESTINATION_NOT_ALLOWED"),
    ("https://[::ffff:169.254.169.254]/", "DESTINATION_NOT_ALLOWED"),
    # empty
    ("   ", "REQUIRED"),
    ("", "REQUIRED"),
]


# each case for one kind in turn (the rule is the same for every URL field); the three
# addresses most often tried against such services for every kind
URL_CASES = [
    (*URL_FIELDS[i % len(URL_FIELDS)], url, code) for i, (url, code) in enumerate(BAD_URLS)
]
URL_CASES += [
    (kind, key, url, "DESTINATION_NOT_ALLOWED")
    for url in ("https://10.0.0.5/x", "https://169.254.169.254/", "https://[::ffff:10.0.0.1]/")
    for kind, key in URL_FIELDS
    if (kind, key, url, "DESTINATION_NOT_ALLOWED") not in URL_CASES
]


@pytest.mark.parametrize(("kind", "key", "url", "code"), URL_CASES)
async def test_a_bad_destination_url_is_refused_and_nothing_is_stored(
    api: Api, kind: str, key: str, url: str, code: str
) -> None:
    # given whatever is stored, when a channel is created with this URL, then it is refused
    await assert_refused(api, kind, {"name": "bad url", key: url}, [key], code)


@pytest.mark.parametrize(("kind", "key"), URL_FIELDS)
async def test_a_url_of_2048_characters_is_accepted(api: Api, kind: str, key: str) -> None:
    url = "https://example.com/" + "a" * 2028
    assert len(url) == 2048
    payload = await save(api, kind, {key: url})
    assert payload["errors"] == []
    assert payload["channel"]["configured"] is True


@pytest.mark.parametrize(("kind", "key"), URL_FIELDS)
async def test_a_bad_url_on_update_keeps_the_stored_url(api: Api, kind: str, key: str) -> None:
    # given a channel with a good URL
    channel = await create(api, kind, {key: "https://hooks.example.com/services/good/OLD1"})
    # when its URL is replaced by a private address, then it keeps the old one
    await assert_refused(
        api,
        kind,
        {"id": channel["id"], key: "https://10.0.0.5/new"},
        [key],
        "DESTINATION_NOT_ALLOWED",
    )
    await assert_unchanged(api, channel)


GOOD_LOCAL_URLS = [
    "https://127.0.0.1:8443/hook",
    "http://127.0.0.1:9000/hook",
    "http://127.1.2.3/hook",
    "https://localhost/hook",
    "http://localhost:8080/hook",
    "http://[::ffff:127.0.0.1]:8080/hook",
]


@pytest.mark.parametrize("url", GOOD_LOCAL_URLS)
async def test_loopback_is_accepted_when_it_is_an_allowed_private_network(
    api: Api, url: str
) -> None:
    # given the test settings, which allow 127.0.0.0/8, when a URL names loopback
    payload = await save(api, "Webhook", {"url": url})
    # then it is saved
    assert payload["errors"] == []
    assert payload["channel"]["urlSet"] is True
    assert payload["channel"]["configured"] is True


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_loopback_smtp_host_is_accepted_when_it_is_an_allowed_private_network(
    api: Api, host: str
) -> None:
    payload = await save(api, "Email", {"to": ["ops@example.com"], "smtpHost": host})
    assert payload["errors"] == []
    assert payload["channel"]["smtpHost"] == host


STRICT_REFUSED = [
    "https://127.0.0.1:8443/hook",
    "http://127.0.0.1:9000/hook",
    "https://localhost/hook",
    "http://localhost:8080/hook",
    "https://LOCALHOST/hook",
    "https://app.localhost/hook",
    "https://[::ffff:127.0.0.1]/hook",
]


@pytest.mark.parametrize("url", STRICT_REFUSED)
async def test_loopback_is_refused_when_no_private_network_is_allowed(
    strict_api: Api, url: str
) -> None:
    # given TOCSIN_ALLOWED_PRIVATE_NETWORKS empty, when a URL names loopback, then it is refused
    await assert_refused(strict_api, "Webhook", {"url": url}, ["url"], "DESTINATION_NOT_ALLOWED")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "10.0.0.5"])
async def test_loopback_smtp_host_is_refused_when_no_private_network_is_allowed(
    strict_api: Api, host: str
) -> None:
    await assert_refused(
        strict_api, "Email", {"smtpHost": host}, ["smtpHost"], "DESTINATION_NOT_ALLOWED"
    )


async def test_a_public_https_url_is_accepted_when_no_private_network_is_allowed(
    strict_api: Api,
) -> None:
    payload = await save(strict_api, "Slack", {"webhookUrl": "https://hooks.example.com/T/B/x"})
    assert payload["errors"] == []
    assert payload["channel"]["webhookUrlSet"] is True


# -- every spelling of an internal address (the egress policy at save) -------------------

# (host as a URL writes it, the rule the message names); each is refused with nothing allowed
INTERNAL_FORMS = [
    ("2130706433", "2130706433 is 127.0.0.1, a loopback address"),
    ("0x7f.1", "0x7f.1 is 127.0.0.1, a loopback address"),
    ("0177.0.0.1", "0177.0.0.1 is 127.0.0.1, a loopback address"),
    ("127.1", "127.1 is 127.0.0.1, a loopback address"),
    ("0", "0 is 0.0.0.0, the unspecified address"),
    ("0x7f000001", "0x7f000001 is 127.0.0.1, a loopback address"),
    ("017700000001", "017700000001 is 127.0.0.1, a loopback address"),
    ("0x7F.0.0.01", "0x7f.0.0.01 is 127.0.0.1, a loopback address"),
    ("127.0.0.1.", "127.0.0.1. is 127.0.0.1, a loopback address"),
    ("10.1", "10.1 is 10.0.0.1, a private address"),
    ("192.168.1", "192.168.1 is 192.168.0.1, a private address"),
    ("0xa9.0xfe.0xa9.0xfe", "0xa9.0xfe.0xa9.0xfe is 169.254.169.254, a link-local address"),
    ("0.1.2.3", '0.1.2.3 is a "this network" address'),
    ("100.64.0.1", "100.64.0.1 is a shared (carrier-grade NAT) address"),
    ("198.18.0.1", "198.18.0.1 is a benchmarking address"),
    ("192.0.2.1", "192.0.2.1 is a documentation address"),
    ("192.0.0.8", "192.0.0.8 is an IETF protocol address"),
    ("239.1.2.3", "239.1.2.3 is a multicast address"),
    ("240.0.0.1", "240.0.0.1 is a reserved address"),
    ("255.255.255.255", "255.255.255.255 is the broadcast address"),
    ("[::]", ":: is the unspecified address"),
    ("[0:0:0:0:0:0:0:1]", "0:0:0:0:0:0:0:1 is ::1, a loopback address"),
    ("[::ffff:7f00:1]", "::ffff:7f00:1 is an IPv4-mapped address of 127.0.0.1, a loopback address"),
    ("[::ffff:0:a00:1]", "::ffff:0:a00:1 is an IPv4-translated address of 10.0.0.1, a private"),
    ("[::127.0.0.1]", "::127.0.0.1 is a deprecated IPv4-compatible address of 127.0.0.1"),
    ("[2002:7f00:1::]", "2002:7f00:1:: is a 6to4 address of 127.0.0.1, a loopback address"),
    ("[2002:a9fe:a9fe::1]", "2002:a9fe:a9fe::1 is a 6to4 address of 169.254.169.254, a link-loc"),
    (
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
        "2001:0:4136:e378:8000:63bf:80ff:fffe is a Teredo address whose client is 127.0.0.1",
    ),
    (
        "[2001:0:4136:e378:8000:63bf:f7f7:f7f7]",  # client 8.8.8.8: Teredo is refused anyway
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7 is a Teredo tunnel address",
    ),
    ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1 is a NAT64 address of 127.0.0.1, a loopback address"),
    ("[64:ff9b:1::a9fe:a9fe]", "64:ff9b:1::a9fe:a9fe is a local-use NAT64 address of 169.254"),
    ("[fe80::1%25eth0]", "fe80::1%25eth0 is a link-local address"),
    ("[fd12:3456::1]", "fd12:3456::1 is a unique-local (private) address"),
    ("[fec0::1]", "fec0::1 is a site-local address"),
    ("[ff02::1]", "ff02::1 is a multicast address"),
    ("[100::1]", "100::1 is a discard-only address"),
    ("[2001:db8::1]", "2001:db8::1 is a documentation address"),
    ("[4000::1]", "4000::1 is a reserved address"),
    ("localhost.", "localhost. is always this host, a loopback address"),
    ("LOCALHOST.localdomain", "localhost.localdomain is always this host, a loopback address"),
]
INTERNAL_URL_CASES = [
    (*URL_FIELDS[i % len(URL_FIELDS)], host, says) for i, (host, says) in enumerate(INTERNAL_FORMS)
]


@pytest.mark.parametrize(("kind", "key", "host", "says"), INTERNAL_URL_CASES)
async def test_every_spelling_of_an_internal_address_is_refused_at_save(
    strict_api: Api, kind: str, key: str, host: str, says: str
) -> None:
    # given nothing allowed, when a URL names an internal address in any spelling
    # getaddrinfo accepts, then save refuses it and the message names the rule
    url = f"https://{host}:8443/services/T000/B000/XXXX"
    payload = await assert_refused(strict_api, kind, {key: url}, [key], "DESTINATION_NOT_ALLOWED")
    assert says in payload["errors"][0]["message"]
    assert "XXXX" not in payload["errors"][0]["message"]


@pytest.mark.parametrize(("host", "says"), INTERNAL_FORMS)
async def test_every_spelling_of_an_internal_smtp_host_is_refused_at_save(
    strict_api: Api, host: str, says: str
) -> None:
    smtp_host = host.strip("[]").replace("%25", "%")
    payload = await assert_refused(
        strict_api, "Email", {"smtpHost": smtp_host}, ["smtpHost"], "DESTINATION_NOT_ALLOWED"
    )
    assert says.replace("%25", "%") in payload["errors"][0]["message"]


@pytest.mark.parametrize(
    "host", ["1.2.3.256", "4294967296", "1.2.3.4.5", "08.0.0.1", "hooks.example.123", "0x1g.1"]
)
async def test_a_host_that_ends_in_a_number_but_is_no_address_is_refused(
    strict_api: Api, host: str
) -> None:
    await assert_refused(
        strict_api, "Webhook", {"url": f"https://{host}/hook"}, ["url"], "INVALID_URL"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://[64:ff9b::808:808]/hook",  # NAT64 of a public address (as DNS64 answers)
        "https://[2002:808:808::1]/hook",  # 6to4 of a public address
    ],
)
async def test_public_addresses_in_any_spelling_are_accepted(strict_api: Api, url: str) -> None:
    payload = await save(strict_api, "Webhook", {"url": url})
    assert payload["errors"] == []
    assert payload["channel"]["urlSet"] is True


@pytest.mark.parametrize(
    ("strict", "url", "address"),
    [
        (True, "https://134744072/hook", "8.8.8.8"),
        (True, "https://8.8.8.8./hook", "8.8.8.8"),
        (False, "https://0x7f.1/hook", "127.0.0.1"),
        (False, "http://2130706433:8080/hook", "127.0.0.1"),
    ],
)
async def test_an_allowed_address_in_an_unusual_spelling_asks_for_the_usual_one(
    api: Api, strict_api: Api, strict: bool, url: str, address: str
) -> None:
    # given an address the policy allows (public, or inside the allowed networks), when it
    # is written in a form httpx does not read, then save asks for the dotted form
    payload = await assert_refused(
        strict_api if strict else api, "Webhook", {"url": url}, ["url"], "INVALID_URL"
    )
    assert payload["errors"][0]["message"] == f"Write the address as {address}."


@pytest.mark.parametrize(
    ("host", "hint"),
    [
        ("[2606:4700:4700::1111]:8443", "https://[2606:4700:4700::1111]/…/ABCD"),
        ("[2606:4700:4700::1111]", "https://[2606:4700:4700::1111]/…/ABCD"),
        ("Hooks.Example.com", "https://hooks.example.com/…/ABCD"),
    ],
)
async def test_the_url_hint_keeps_the_brackets_of_an_ipv6_host(
    strict_api: Api, host: str, hint: str
) -> None:
    payload = await save(strict_api, "Discord", {"webhookUrl": f"https://{host}/api/x/ABCD"})
    assert payload["errors"] == []
    assert payload["channel"]["webhookUrlHint"] == hint


# -- email -------------------------------------------------------------------------------

EMAIL_CASES = [
    ({"to": ["not-an-address"]}, ["to", "0"], "INVALID_EMAIL"),
    ({"to": ["ops@example.com", "no-at-sign.example.com"]}, ["to", "1"], "INVALID_EMAIL"),
    ({"to": ["ops@example.com\r\nBcc: all@example.com"]}, ["to", "0"], "INVALID_EMAIL"),
    ({"to": [f"r{i}@example.com" for i in range(51)]}, ["to"], "TOO_MANY"),
    ({"fromAddress": "nobody"}, ["fromAddress"], "INVALID_EMAIL"),
    ({"fromAddress": "tocsin@"}, ["fromAddress"], "INVALID_EMAIL"),
    ({"smtpPort": 0}, ["smtpPort"], "INVALID_PORT"),
    ({"smtpPort": 70000}, ["smtpPort"], "INVALID_PORT"),
    ({"smtpPort": -25}, ["smtpPort"], "INVALID_PORT"),
    ({"smtpHost": "smtp example.com"}, ["smtpHost"], "INVALID_HOST"),
    ({"smtpHost": "smtp.example.com/path"}, ["smtpHost"], "INVALID_HOST"),
    ({"smtpHost": "smtp.example.com:587"}, ["smtpHost"], "INVALID_HOST"),
    ({"smtpHost": "10.0.0.5"}, ["smtpHost"], "DESTINATION_NOT_ALLOWED"),
    ({"smtpHost": "169.254.169.254"}, ["smtpHost"], "DESTINATION_NOT_ALLOWED"),
    ({"smtpHost": "::ffff:10.0.0.1"}, ["smtpHost"], "DESTINATION_NOT_ALLOWED"),
    ({"smtpHost": "fe80::1"}, ["smtpHost"], "DESTINATION_NOT_ALLOWED"),
    ({"username": "bot@example.com\r\nX: y"}, ["username"], "INVALID_VALUE"),
    ({"fromName": "x" * 321}, ["fromName"], "INVALID_VALUE"),
]


@pytest.mark.parametrize(("data", "field", "code"), EMAIL_CASES)
async def test_bad_email_settings_are_refused(
    api: Api, data: dict[str, Any], field: list[str], code: str
) -> None:
    await assert_refused(api, "Email", {"name": "mail", **data}, field, code)


async def test_email_boundaries_are_accepted(api: Api) -> None:
    for port in (1, 65535):
        payload = await save(
            api,
            "Email",
            {
                "to": [f"r{i}@example.com" for i in range(50)],
                "smtpHost": "smtp.example.com",
                "smtpPort": port,
                "fromAddress": "Tocsin@Example.com",
            },
        )
        assert payload["errors"] == []
        assert payload["channel"]["smtpPort"] == port
        assert len(payload["channel"]["to"]) == 50


# -- plain-text SMTP with a login --------------------------------------------------------

LOGIN = {"to": ["ops@example.com"], "username": "bot@example.com", "password": "hunter2-pw"}


@pytest.mark.parametrize(
    ("strict", "host"),
    [
        (True, "smtp.example.com"),  # a name, and no network allowed: it can never pass at send
        (True, "93.184.216.34"),
        (False, "93.184.216.34"),  # public, so not inside 127.0.0.0/8
        (False, "2606:4700:4700::1111"),
    ],
)
async def test_security_none_with_a_login_is_refused_outside_the_allowed_networks(
    api: Api, strict_api: Api, strict: bool, host: str
) -> None:
    data = {**LOGIN, "smtpHost": host, "security": "NONE"}
    payload = await assert_refused(
        strict_api if strict else api, "Email", data, ["security"], "PLAINTEXT_LOGIN_NOT_ALLOWED"
    )
    assert "clear text" in payload["errors"][0]["message"]
    assert "hunter2" not in payload["errors"][0]["message"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "smtp.example.com"])
async def test_security_none_with_a_login_is_accepted_inside_the_allowed_networks(
    api: Api, host: str
) -> None:
    # a literal address inside 127.0.0.0/8, or a name (decided at send, on the address)
    payload = await save(api, "Email", {**LOGIN, "smtpHost": host, "security": "NONE"})
    assert payload["errors"] == []
    assert payload["channel"]["security"] == "NONE"
    assert payload["channel"]["passwordSet"] is True


async def test_security_none_without_a_login_is_accepted_anywhere(strict_api: Api) -> None:
    data = {"to": ["ops@example.com"], "smtpHost": "smtp.example.com", "security": "NONE"}
    payload = await save(strict_api, "Email", data)
    assert payload["errors"] == []
    username_only = await save(strict_api, "Email", {**data, "username": "bot@example.com"})
    assert username_only["errors"] == []


async def test_switching_an_smtp_channel_to_plain_text_is_refused_on_the_field_that_changed(
    api: Api,
) -> None:
    # given a channel that logs in over TLS to a public address
    channel = await create(api, "Email", {**LOGIN, "smtpHost": "93.184.216.34", "security": "TLS"})
    # when its security becomes NONE, then the refusal is on security
    await assert_refused(
        api,
        "Email",
        {"id": channel["id"], "security": "NONE"},
        ["security"],
        "PLAINTEXT_LOGIN_NOT_ALLOWED",
    )
    # and given a plain channel without a password, adding one is refused on password
    plain = await create(
        api,
        "Email",
        {
            "to": ["ops@example.com"],
            "username": "bot",
            "smtpHost": "93.184.216.34",
            "security": "NONE",
        },
    )
    await assert_refused(
        api,
        "Email",
        {"id": plain["id"], "password": "pw"},
        ["password"],
        "PLAINTEXT_LOGIN_NOT_ALLOWED",
    )
    await assert_unchanged(api, channel)
    await assert_unchanged(api, plain)


async def test_a_plain_text_channel_can_still_be_renamed_or_disabled(api: Api) -> None:
    # given a plain channel with a login to an allowed address
    channel = await create(api, "Email", {**LOGIN, "smtpHost": "127.0.0.1", "security": "NONE"})
    # when its host moves to a public address, then that is refused
    await assert_refused(
        api,
        "Email",
        {"id": channel["id"], "smtpHost": "93.184.216.34"},
        ["security"],
        "PLAINTEXT_LOGIN_NOT_ALLOWED",
    )
    # but a change that touches neither host, security nor login is saved
    payload = await save(api, "Email", {"id": channel["id"], "name": "old", "enabled": False})
    assert payload["errors"] == []
    assert payload["channel"]["enabled"] is False


async def test_every_bad_recipient_is_reported_by_its_index(api: Api) -> None:
    before = await stored(api)
    payload = await save(api, "Email", {"to": ["bad-one", "ok@example.com", "bad-two"]})
    assert problems(payload) == [(["to", "0"], "INVALID_EMAIL"), (["to", "2"], "INVALID_EMAIL")]
    assert await stored(api) == before


# -- webhook headers and signing secret --------------------------------------------------

HEADER_CASES = [
    ({"X-Bad\r\nInjected": "v"}, ["headers", "X-Bad\r\nInjected"], "INVALID_HEADER_NAME"),
    ({"X-Bad\n": "v"}, ["headers", "X-Bad\n"], "INVALID_HEADER_NAME"),
    ({"X Bad": "v"}, ["headers", "X Bad"], "INVALID_HEADER_NAME"),
    ({"X-Colon:": "v"}, ["headers", "X-Colon:"], "INVALID_HEADER_NAME"),
    ({"": "v"}, ["headers", ""], "INVALID_HEADER_NAME"),
    ({"X-" + "a" * 120: "v"}, ["headers", "X-" + "a" * 120], "INVALID_HEADER_NAME"),
    ({"Host": "evil.example.com"}, ["headers", "Host"], "HEADER_NOT_ALLOWED"),
    ({"host": "evil.example.com"}, ["headers", "host"], "HEADER_NOT_ALLOWED"),
    ({"Content-Length": "0"}, ["headers", "Content-Length"], "HEADER_NOT_ALLOWED"),
    ({"Content-Type": "text/plain"}, ["headers", "Content-Type"], "HEADER_NOT_ALLOWED"),
    ({"Connection": "close"}, ["headers", "Connection"], "HEADER_NOT_ALLOWED"),
    ({"Transfer-Encoding": "chunked"}, ["headers", "Transfer-Encoding"], "HEADER_NOT_ALLOWED"),
    ({"Upgrade": "websocket"}, ["headers", "Upgrade"], "HEADER_NOT_ALLOWED"),
    ({"Proxy-Authorization": "Basic x"}, ["headers", "Proxy-Authorization"], "HEADER_NOT_ALLOWED"),
    ({"Webhook-Signature": "v1,x"}, ["headers", "Webhook-Signature"], "HEADER_NOT_ALLOWED"),
    ({"X-Token": "a\r\nX-Injected: 1"}, ["headers", "X-Token"], "INVALID_HEADER_VALUE"),
    ({"X-Token": "a\nb"}, ["headers", "X-Token"], "INVALID_HEADER_VALUE"),
    ({"X-Token": "a\x00b"}, ["headers", "X-Token"], "INVALID_HEADER_VALUE"),
    ({"X-Token": "v" * 4097}, ["headers", "X-Token"], "INVALID_HEADER_VALUE"),
    ({"X-Token": 5}, ["headers", "X-Token"], "INVALID_HEADER_VALUE"),
    ({"X-New": None}, ["headers", "X-New"], "REQUIRED"),
    ("X-Token: abc", ["headers"], "INVALID_HEADERS"),
    (["X-Token", "abc"], ["headers"], "INVALID_HEADERS"),
    (42, ["headers"], "INVALID_HEADERS"),
    ({f"X-H{i}": "v" for i in range(21)}, ["headers"], "TOO_MANY"),
]


@pytest.mark.parametrize(("headers", "field", "code"), HEADER_CASES)
async def test_bad_webhook_headers_are_refused(
    api: Api, headers: Any, field: list[str], code: str
) -> None:
    data = {"url": "https://receiver.example.com/hook", "headers": headers}
    await assert_refused(api, "Webhook", data, field, code)


SIGNING_CASES = [
    "my-shared-secret",
    "whsec_",
    "whsec_not*base64!",
    "whsec_" + base64.b64encode(b"k" * 16).decode(),
    "whsec_" + base64.b64encode(b"k" * 65).decode(),
    base64.b64encode(b"k" * 32).decode(),
]


@pytest.mark.parametrize("secret", SIGNING_CASES)
async def test_a_signing_secret_not_in_whsec_form_is_refused(api: Api, secret: str) -> None:
    data = {"url": "https://receiver.example.com/hook", "signingSecret": secret}
    await assert_refused(api, "Webhook", data, ["signingSecret"], "INVALID_SIGNING_SECRET")


async def test_a_whsec_secret_of_24_to_64_bytes_is_accepted(api: Api) -> None:
    for size in (24, 32, 64):
        secret = "whsec_" + base64.b64encode(b"s" * size).decode()
        payload = await save(api, "Webhook", {"signingSecret": secret})
        assert payload["errors"] == []
        assert payload["channel"]["signingSecretSet"] is True


# -- telegram ----------------------------------------------------------------------------

CHAT_IDS = ["general", "12 34", "@abc", "--100123", "1" * 21, "@chan-nel"]
BOT_TOKENS = [
    "not-a-token",
    "123456789:short",
    "12:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
    "abc:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
    "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALD saw1",
    "123456789:" + "A" * 65,
]


@pytest.mark.parametrize("chat_id", CHAT_IDS)
async def test_a_bad_chat_id_is_refused(api: Api, chat_id: str) -> None:
    await assert_refused(
        api, "Telegram", {"botToken": BOT, "chatId": chat_id}, ["chatId"], "INVALID_CHAT_ID"
    )


@pytest.mark.parametrize("bot_token", BOT_TOKENS)
async def test_a_bad_bot_token_is_refused(api: Api, bot_token: str) -> None:
    await assert_refused(
        api,
        "Telegram",
        {"botToken": bot_token, "chatId": "-1001234567890"},
        ["botToken"],
        "INVALID_BOT_TOKEN",
    )


@pytest.mark.parametrize("chat_id", ["-1001234567890", "42", "@tocsin_alerts"])
async def test_good_chat_ids_are_accepted(api: Api, chat_id: str) -> None:
    payload = await save(api, "Telegram", {"botToken": BOT, "chatId": chat_id})
    assert payload["errors"] == []
    assert payload["channel"]["chatId"] == chat_id
    assert payload["channel"]["configured"] is True


# -- fields every kind has ---------------------------------------------------------------

COMMON_CASES = [
    ({"name": ""}, ["name"], "REQUIRED"),
    ({"name": "   "}, ["name"], "REQUIRED"),
    ({"name": "n" * 201}, ["name"], "TOO_LONG"),
    ({"maxRetries": -1}, ["maxRetries"], "OUT_OF_RANGE"),
    ({"maxRetries": 21}, ["maxRetries"], "OUT_OF_RANGE"),
    ({"maxRetries": 1000000}, ["maxRetries"], "OUT_OF_RANGE"),
    ({"eventTypes": ["no_such_type"]}, ["eventTypes", "0"], "UNKNOWN_EVENT_TYPE"),
    (
        {"eventTypes": ["refresh_failed", "schema_drift", "nope"]},
        ["eventTypes", "2"],
        "UNKNOWN_EVENT_TYPE",
    ),
    ({"metadataMatch": "production"}, ["metadataMatch"], "INVALID_METADATA_MATCH"),
    ({"metadataMatch": ["production"]}, ["metadataMatch"], "INVALID_METADATA_MATCH"),
    ({"metadataMatch": 7}, ["metadataMatch"], "INVALID_METADATA_MATCH"),
    ({"metadataMatch": {}}, ["metadataMatch"], "INVALID_METADATA_MATCH"),
    (
        {"metadataMatch": {"environment": {"is": "prod"}}},
        ["metadataMatch", "environment"],
        "INVALID_METADATA_MATCH",
    ),
    (
        {"metadataMatch": {"environment": []}},
        ["metadataMatch", "environment"],
        "INVALID_METADATA_MATCH",
    ),
]


@pytest.mark.parametrize(
    ("kind", "data", "field", "code"),
    [(KINDS[i % len(KINDS)], *case) for i, case in enumerate(COMMON_CASES)]
    + [(kind, {"name": ""}, ["name"], "REQUIRED") for kind in KINDS[1:]],
)
async def test_bad_common_fields_are_refused_for_every_kind(
    api: Api, kind: str, data: dict[str, Any], field: list[str], code: str
) -> None:
    await assert_refused(api, kind, data, field, code)


async def test_common_boundaries_are_accepted(api: Api) -> None:
    payload = await save(
        api,
        "Slack",
        {
            "name": "n" * 200,
            "maxRetries": 0,
            "eventTypes": ["refresh_failed", "test"],
            "metadataMatch": {"environment": ["production", "staging"], "tier": 1},
        },
    )
    assert payload["errors"] == []
    channel = payload["channel"]
    assert channel["name"] == "n" * 200
    assert channel["maxRetries"] == 0
    assert channel["eventTypes"] == ["refresh_failed", "test"]
    assert channel["metadataMatch"] == {"environment": ["production", "staging"], "tier": ["1"]}
    again = await save(api, "Slack", {"id": channel["id"], "maxRetries": 20})
    assert again["errors"] == [] and again["channel"]["maxRetries"] == 20


async def test_all_problems_of_one_input_are_reported_together(api: Api) -> None:
    before = await stored(api)
    payload = await save(
        api,
        "Email",
        {"name": "", "maxRetries": 99, "to": ["x"], "smtpPort": 0, "smtpHost": "a b"},
    )
    assert payload["channel"] is None
    assert sorted(problems(payload), key=str) == sorted(
        [
            (["name"], "REQUIRED"),
            (["maxRetries"], "OUT_OF_RANGE"),
            (["to", "0"], "INVALID_EMAIL"),
            (["smtpPort"], "INVALID_PORT"),
            (["smtpHost"], "INVALID_HOST"),
        ],
        key=str,
    )
    assert await stored(api) == before


# -- an update with one bad field applies none of the good ones --------------------------

UPDATE_CASES = [
    (
        "Slack",
        {"name": "Before", "webhookUrl": "https://hooks.example.com/services/OLD1"},
        {
            "name": "After",
            "enabled": False,
            "maxRetries": 7,
            "minPriority": "HIGH",
            "mode": "DIGEST",
            "eventTypes": ["refresh_failed"],
            "webhookUrl": "https://hooks.example.com/services/NEW2",
        },
        ("metadataMatch", "production"),
        ["metadataMatch"],
        "INVALID_METADATA_MATCH",
    ),
    (
        "Webhook",
        {
            "name": "Before",
            "url": "https://receiver.example.com/hook/OLD1",
            "headers": {"X-Team": "data"},
        },
        {
            "name": "After",
            "url": "https://receiver.example.com/hook/NEW2",
            "signingSecret": SIGNING,
            "maxRetries": 9,
        },
        ("headers", {"X-Api-Key": "good", "Host": "evil.example.com"}),
        ["headers", "Host"],
        "HEADER_NOT_ALLOWED",
    ),
    (
        "Webhook",
        {"name": "Before", "url": "https://receiver.example.com/hook/OLD1"},
        {"name": "After", "headers": {"X-Api-Key": "good"}, "signingSecret": SIGNING},
        ("url", "https://169.254.169.254/latest"),
        ["url"],
        "DESTINATION_NOT_ALLOWED",
    ),
    (
        "Email",
        {"name": "Before", "to": ["old@example.com"], "smtpHost": "old.example.com"},
        {
            "name": "After",
            "to": ["new@example.com"],
            "smtpHost": "smtp.example.com",
            "security": "TLS",
            "username": "bot@example.com",
            "password": "hunter2-password",
            "fromAddress": "alerts@example.com",
            "fromName": "Alerts",
            "verifyTls": False,
        },
        ("smtpPort", 0),
        ["smtpPort"],
        "INVALID_PORT",
    ),
    (
        "Email",
        {"name": "Before", "to": ["old@example.com"], "smtpHost": "old.example.com"},
        {"name": "After", "smtpHost": "smtp.example.com", "smtpPort": 465},
        ("to", ["new@example.com", "broken"]),
        ["to", "1"],
        "INVALID_EMAIL",
    ),
    (
        "Discord",
        {"name": "Before", "webhookUrl": "https://discord.example.com/api/webhooks/OLD1"},
        {"name": "After", "webhookUrl": "https://discord.example.com/api/webhooks/NEW2"},
        ("eventTypes", ["refresh_failed", "made_up"]),
        ["eventTypes", "1"],
        "UNKNOWN_EVENT_TYPE",
    ),
    (
        "Telegram",
        {"name": "Before", "botToken": BOT, "chatId": "-1001"},
        {"name": "After", "botToken": "987654321:" + "B" * 35, "mode": "DIGEST"},
        ("chatId", "not a chat"),
        ["chatId"],
        "INVALID_CHAT_ID",
    ),
    (
        "Telegram",
        {"name": "Before", "chatId": "-1001"},
        {"name": "After", "chatId": "-2002", "maxRetries": 1},
        ("botToken", "oops"),
        ["botToken"],
        "INVALID_BOT_TOKEN",
    ),
]


@pytest.mark.parametrize(("kind", "initial", "good", "bad", "field", "code"), UPDATE_CASES)
async def test_an_update_with_one_bad_field_applies_none_of_the_good_ones(
    api: Api,
    kind: str,
    initial: dict[str, Any],
    good: dict[str, Any],
    bad: tuple[str, Any],
    field: list[str],
    code: str,
) -> None:
    # given a stored channel, and proof that the good fields alone would be accepted
    channel = await create(api, kind, initial)
    probe = await create(api, kind, {**initial, **good})
    assert probe["name"] == "After"
    # when the good fields are sent with one bad field
    key, value = bad
    await assert_refused(api, kind, {"id": channel["id"], **good, key: value}, field, code)
    # then the channel reads back exactly as before
    await assert_unchanged(api, channel)


# -- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_saving_an_unknown_id_is_not_found(api: Api, kind: str) -> None:
    await assert_refused(
        api, kind, {"id": "01deadbeef0000000000000000000000", "name": "x"}, ["id"], "NOT_FOUND"
    )


@pytest.mark.parametrize("other", [kind for kind in KINDS if kind != "Slack"])
async def test_an_id_of_another_kind_is_not_found(api: Api, other: str) -> None:
    # given a Slack channel
    slack = await create(api, "Slack", {"name": "Slack one", "webhookUrl": "https://h.example/x"})
    # when it is saved through another kind's mutation, then it is not found and unchanged
    await assert_refused(api, other, {"id": slack["id"], "name": "Hijacked"}, ["id"], "NOT_FOUND")
    await assert_unchanged(api, slack)


async def test_deleting_an_unknown_id_is_not_found(api: Api) -> None:
    before = await stored(api)
    payload = (await api.ok(DELETE, {"id": "01deadbeef0000000000000000000000"}))["deleteChannel"]
    assert payload["deletedId"] is None
    assert problems(payload) == [(["id"], "NOT_FOUND")]
    assert await stored(api) == before


@pytest.mark.parametrize("until", [None, "2031-01-01T00:00:00+00:00"])
async def test_muting_an_unknown_id_is_not_found(api: Api, until: str | None) -> None:
    before = await stored(api)
    payload = (await api.ok(MUTE, {"id": "no-such-channel", "until": until}))["muteChannel"]
    assert payload["channel"] is None
    assert problems(payload) == [(["id"], "NOT_FOUND")]
    assert await stored(api) == before


# -- DateTime ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("until", "says"),
    [
        ("2031-01-01T00:00:00", "offset"),
        ("2031-01-01 00:00", "offset"),
        ("tomorrow", "ISO 8601"),
    ],
)
async def test_mute_until_without_an_offset_is_refused(api: Api, until: str, says: str) -> None:
    # given a channel
    channel = await create(api, "Slack", {"name": "to mute"})
    before = await stored(api)
    # when muteChannel gets a DateTime with no UTC offset, as a variable and inline
    as_variable = await api.gql(MUTE, {"id": channel["id"], "until": until})
    inline = await api.gql(
        f'mutation {{ muteChannel(id: "{channel["id"]}", until: "{until}") '
        "{ channel { mutedUntil } errors { code } } }"
    )
    # then each is a GraphQL error that says what is wrong, and the channel is not muted
    for body in (as_variable, inline):
        assert body["data"] is None
        message = " ".join(error["message"] for error in body["errors"])
        assert says in message, body
    assert await stored(api) == before


async def test_mute_until_with_an_offset_is_accepted(api: Api) -> None:
    channel = await create(api, "Slack", {"name": "to mute"})
    payload = await api.ok(MUTE, {"id": channel["id"], "until": "2031-01-01T02:00:00+02:00"})
    assert payload["muteChannel"]["errors"] == []
    answered = datetime.fromisoformat(payload["muteChannel"]["channel"]["mutedUntil"])
    read = await api.ok(f'{{ channel(id: "{channel["id"]}") {{ mutedUntil }} }}')
    stored_until = datetime.fromisoformat(read["channel"]["mutedUntil"])
    assert answered.utcoffset() is not None and stored_until.utcoffset() is not None
    assert answered == stored_until == datetime(2031, 1, 1, tzinfo=UTC)


# -- secrets are never repeated back -----------------------------------------------------

CANARY_CASES = [
    ("Slack", "webhookUrl", f"ftp://example.com/{CANARY}"),
    ("Slack", "webhookUrl", f"http://hooks.example.com/{CANARY}"),
    ("Slack", "webhookUrl", f"https://user:{CANARY}@hooks.example.com/x"),
    ("Discord", "webhookUrl", f"https://10.0.0.5/{CANARY}"),
    ("Discord", "webhookUrl", f"https://example.com/{CANARY}/" + "x" * 2100),
    ("Webhook", "url", f"https://example.com:99999/{CANARY}"),
    ("Webhook", "url", f"https://{CANARY}!/x"),
    ("Webhook", "url", f"{CANARY}"),
    ("Webhook", "signingSecret", f"whsec_{CANARY}"),
    ("Webhook", "headers", {"X-Api-Key": f"{CANARY}\r\nX-Injected: 1"}),
    ("Webhook", "headers", {"X-Api-Key": CANARY * 200}),
    ("Telegram", "botToken", f"123:{CANARY}"),
    ("Email", "password", CANARY * 50),
]


@pytest.mark.parametrize(("kind", "key", "value"), CANARY_CASES)
async def test_an_error_never_repeats_the_submitted_secret(
    api: Api, kind: str, key: str, value: Any
) -> None:
    before = await stored(api)
    response = await api.post(SAVE[kind], {"input": {key: value}})
    assert response.status_code == 200
    payload = response.json()["data"]["save"]
    assert payload["channel"] is None and payload["errors"], payload
    assert CANARY not in response.text
    assert CANARY.lower() not in response.text.lower()
    assert await stored(api) == before


# -- tokens and event types --------------------------------------------------------------

CREATE_TOKEN = """mutation($name: String!, $role: Role!) {
  createApiToken(name: $name, role: $role) { token apiToken { id } errors { field code message } }
}"""


@pytest.mark.parametrize(
    ("name", "code"), [("", "REQUIRED"), ("   ", "REQUIRED"), ("t" * 201, "TOO_LONG")]
)
async def test_create_api_token_with_a_bad_name_is_refused(api: Api, name: str, code: str) -> None:
    before = await api.ok("{ apiTokens { id name role } }")
    payload = (await api.ok(CREATE_TOKEN, {"name": name, "role": "VIEWER"}))["createApiToken"]
    assert payload["token"] is None
    assert payload["apiToken"] is None
    assert problems(payload) == [(["name"], code)]
    assert await api.ok("{ apiTokens { id name role } }") == before


@pytest.mark.parametrize("name", ["Bad Name", "1starts_with_digit", "", "has/slash", "a" * 65])
async def test_register_event_type_with_an_invalid_name_is_refused(api: Api, name: str) -> None:
    before = await api.ok("{ eventTypes { name } }")
    body = await api.gql(
        "mutation($input: EventTypeInput!) { registerEventType(input: $input) { name } }",
        {"input": {"name": name, "description": "x"}},
    )
    assert body["data"] == {"registerEventType": None}
    [error] = body["errors"]
    assert error["path"] == ["registerEventType"]
    assert error["extensions"]["code"] == "INVALID_NAME"
    assert error["message"] != "Internal server error."
    assert await api.ok("{ eventTypes { name } }") == before


async def test_register_event_type_refuses_a_name_with_a_trailing_newline(api: Api) -> None:
    # "$" in a Python regex also matches just before a final "\n"
    body = await api.gql(
        "mutation($input: EventTypeInput!) { registerEventType(input: $input) { name } }",
        {"input": {"name": "backup_failed\n"}},
    )
    assert body["data"] == {"registerEventType": None}, "a name ending in a newline was stored"
    assert body["errors"][0]["extensions"]["code"] == "INVALID_NAME"


async def test_register_event_type_with_a_valid_name_works(api: Api) -> None:
    data = await api.ok(
        'mutation { registerEventType(input: {name: "backup.failed-v2"}) { name builtIn } }'
    )
    assert data["registerEventType"] == {"name": "backup.failed-v2", "builtIn": False}

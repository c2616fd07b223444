"""Encryption keys: generation, rotation, refusing wrong or malformed keys, and the key
file generated when TOCSIN_SECRET_KEYS is not set."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from tests.e2e import cli_env, free_port, only_line_mentioning, run_cli
from tests.support import Api, make_settings, start_api
from tocsin.services import open_services
from tocsin.settings import ConfigurationError, Settings
from tocsin.storage.channel_secrets import decrypt_secrets
from tocsin.storage.database import create_engine
from tocsin.storage.secretbox import SecretBox
from tocsin.storage.tables import ChannelRow

SIGNING = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BOT = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"

# one channel of each kind: the GraphQL input, and the secrets it stores (by storage name)
CHANNELS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "Slack",
        {"webhookUrl": "https://hooks.slack.com/services/T0/B0/rot8slack"},
        {"webhook_url": "https://hooks.slack.com/services/T0/B0/rot8slack"},
    ),
    (
        "Discord",
        {"webhookUrl": "https://discord.com/api/webhooks/1/rot8discord"},
        {"webhook_url": "https://discord.com/api/webhooks/1/rot8discord"},
    ),
    (
        "Webhook",
        {
            "url": "https://receiver.example.com/rot8hook",
            "signingSecret": SIGNING,
            "headers": {"X-Api-Key": "rot8-key"},
        },
        {
            "url": "https://receiver.example.com/rot8hook",
            "signing_secret": SIGNING,
            "headers": {"X-Api-Key": "rot8-key"},
        },
    ),
    (
        "Email",
        {"to": ["ops@example.com"], "smtpHost": "smtp.example.com", "password": "rot8-pw"},
        {"password": "rot8-pw"},
    ),
    ("Telegram", {"botToken": BOT, "chatId": "-1001234567890"}, {"bot_token": BOT}),
]


def key() -> str:
    return Fernet.generate_key().decode()


def with_keys(settings: Settings, keys: str | None) -> Settings:
    """The same data dir and database, with TOCSIN_SECRET_KEYS=keys (None: unset)."""
    return make_settings(settings.data_dir, settings.sqlalchemy_url, secret_keys=keys)


async def save_all(api: Api) -> dict[str, dict[str, Any]]:
    """Saves CHANNELS through GraphQL: {channel id: the secrets it should hold}."""
    saved = {}
    for kind, data, secrets in CHANNELS:
        result = await api.ok(
            f"mutation($input: {kind}ChannelInput!) {{ save: save{kind}Channel(input: $input) "
            "{ channel { id configured } errors { code } } }",
            {"input": data},
        )
        assert result["save"]["errors"] == []
        assert result["save"]["channel"]["configured"] is True
        saved[result["save"]["channel"]["id"]] = secrets
    return saved


async def stored_secrets(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every channel's secrets, decrypted with the keys of ``settings``."""
    async with open_services(settings, http=False) as services:
        async with services.db.read() as session:
            rows = (await session.scalars(select(ChannelRow))).all()
        return {row.id: decrypt_secrets(services.box, row) for row in rows}


def env_for(settings: Settings, keys: str | None) -> dict[str, str]:
    variables: dict[str, str | Path] = {"DATA_DIR": settings.data_dir}
    variables["DATABASE_URL"] = settings.sqlalchemy_url
    if keys is not None:
        variables["SECRET_KEYS"] = keys
    return cli_env(**variables)


# -- generate ------------------------------------------------------------------------------


def test_keys_generate_prints_a_fernet_key(tmp_path: Path) -> None:
    # when `tocsin keys generate` runs (twice), then each prints one new Fernet key
    env = cli_env(DATA_DIR=tmp_path / "unused")
    first, second = run_cli("keys", "generate", env=env), run_cli("keys", "generate", env=env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    assert first.stdout.count("\n") == 1
    generated = first.stdout.strip()
    Fernet(generated.encode())  # a valid key: URL-safe base64 of 32 bytes
    assert generated != second.stdout.strip()
    # and it touches no data directory
    assert not (tmp_path / "unused").exists()


# -- rotation ------------------------------------------------------------------------------


async def test_rotation_moves_every_secret_to_the_newest_key(
    settings: Settings, tmp_path: Path
) -> None:
    old, new = key(), key()
    with_old = with_keys(settings, old)
    # given channels with secrets saved while TOCSIN_SECRET_KEYS=old
    async for api in start_api(with_keys(settings, old), run_worker=False):
        expected = await save_all(api)
    assert await stored_secrets(with_old) == expected

    # when `tocsin keys rotate` runs with TOCSIN_SECRET_KEYS=new,old
    rotated = run_cli("keys", "rotate", env=env_for(settings, f"{new},{old}"))
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted the secrets of 5 channel(s)" in rotated.stderr
    assert rotated.stdout == ""

    # then a start with only the new key decrypts every secret to what was saved
    with_new = with_keys(settings, new)
    assert await stored_secrets(with_new) == expected
    async for api in start_api(with_new, run_worker=False):
        channels = (await api.ok("{ channels { id configured } }"))["channels"]
        assert {c["id"] for c in channels} == set(expected)
        assert all(c["configured"] for c in channels)
        # and a secret kept across an update (absent field) is still the same one
        slack_id = next(i for i, s in expected.items() if "rot8slack" in str(s))
        await api.ok(
            'mutation($id: ID!) { saveSlackChannel(input: {id: $id, name: "renamed"}) '
            "{ errors { code } } }",
            {"id": slack_id},
        )
    assert (await stored_secrets(with_new))[slack_id] == expected[slack_id]

    # and the old key alone no longer opens anything: the data really moved
    with pytest.raises(ConfigurationError, match="TOCSIN_SECRET_KEYS"):
        await stored_secrets(with_old)
    async with open_services(with_new, http=False) as services:
        async with services.db.read() as session:
            rows = (await session.scalars(select(ChannelRow))).all()
    for row in rows:
        assert row.secrets_ciphertext is not None
        with pytest.raises(ConfigurationError):
            SecretBox([old.encode()]).decrypt(row.secrets_ciphertext)


async def test_rotation_without_the_old_key_changes_nothing(settings: Settings) -> None:
    old = key()
    async for api in start_api(
        with_keys(settings, old),
        run_worker=False,
    ):
        expected = await save_all(api)
    # when rotation runs with only a new key, then it refuses in one line
    rotated = run_cli("keys", "rotate", env=env_for(settings, key()))
    assert rotated.returncode == 2
    assert "Traceback" not in rotated.stderr
    assert only_line_mentioning(rotated.stderr, "TOCSIN_SECRET_KEYS").startswith("tocsin: ")
    # and the old key still opens everything
    with_old = with_keys(settings, old)
    assert await stored_secrets(with_old) == expected


# -- wrong and malformed keys ------------------------------------------------------------


async def test_wrong_key_is_refused_at_start(settings: Settings) -> None:
    # given a database whose secrets were encrypted with one key
    async for api in start_api(settings, run_worker=False):
        await save_all(api)
    wrong = key()
    # when services open with another (valid) key, then a clear ConfigurationError
    with pytest.raises(ConfigurationError) as caught:
        async with open_services(with_keys(settings, wrong)):
            pass
    message = str(caught.value)
    assert "TOCSIN_SECRET_KEYS" in message
    assert wrong not in message

    # and `tocsin serve` exits non-zero with one line naming the variable, no traceback
    served = run_cli("serve", "--port", str(free_port()), env=env_for(settings, wrong))
    assert served.returncode == 2, served.stderr
    assert "Traceback" not in served.stderr
    line = only_line_mentioning(served.stderr, "TOCSIN_SECRET_KEYS")
    assert line.startswith("tocsin: ") and "cannot decrypt" in line
    assert wrong not in served.stderr
    assert "ADMIN API token" not in served.stdout


@pytest.mark.parametrize(
    ("keys", "position"),
    [("not-a-key", 1), ("c2hvcnQ=", 1), ("{good},garbage", 2), ("{good}, ,c2hvcnQ=", 2)],
)
async def test_malformed_key_is_refused_in_one_line(
    settings: Settings, keys: str, position: int
) -> None:
    keys = keys.replace("{good}", key())
    with pytest.raises(ConfigurationError) as caught:
        async with open_services(with_keys(settings, keys)):
            pass
    message = str(caught.value)
    assert message.startswith("TOCSIN_SECRET_KEYS is invalid")
    assert f"key {position} " in message
    assert "\n" not in message
    for part in keys.split(","):
        assert not part.strip() or part not in message


def test_malformed_key_stops_the_command(tmp_path: Path) -> None:
    env = cli_env(DATA_DIR=tmp_path / "data", SECRET_KEYS="not-a-key")
    result = run_cli("token", "create", "--name", "ci", "--role", "EDITOR", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    line = only_line_mentioning(result.stderr, "TOCSIN_SECRET_KEYS")
    assert line.startswith("tocsin: TOCSIN_SECRET_KEYS is invalid: key 1 is not a Fernet key")
    assert "not-a-key" not in result.stderr


async def test_empty_key_list_is_refused(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="TOCSIN_SECRET_KEYS is invalid: no key"):
        async with open_services(with_keys(settings, " , ")):
            pass


# -- the generated key file ------------------------------------------------------------


async def test_key_file_is_generated_private_and_reused(settings: Settings) -> None:
    # given no TOCSIN_SECRET_KEYS
    keyless = with_keys(settings, None)
    key_file = keyless.data_dir / "secret.key"
    assert not key_file.exists()
    # when the first start saves a secret
    async for api in start_api(keyless, run_worker=False):
        expected = await save_all(api)
    # then a key file was written in the data dir, readable by the owner only
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    written = key_file.read_bytes()
    Fernet(written.strip())
    assert [p.name for p in key_file.parent.iterdir() if p.name.startswith(".secret")] == []
    # and the next start reuses it (same key, secrets still open)
    assert await stored_secrets(keyless) == expected
    assert key_file.read_bytes() == written


async def test_bad_key_file_is_refused_naming_the_file(settings: Settings) -> None:
    keyless = with_keys(settings, None)
    keyless.data_dir.mkdir(parents=True, exist_ok=True)
    keyless.key_file.write_text("\n")
    with pytest.raises(ConfigurationError, match="is empty"):
        async with open_services(keyless):
            pass
    keyless.key_file.write_text("not-a-key\n")
    with pytest.raises(ConfigurationError) as caught:
        async with open_services(keyless):
            pass
    assert str(caught.value).startswith(f"the key file {keyless.key_file} is invalid")
    assert "not-a-key" not in str(caught.value)


async def test_a_new_data_dir_is_private(tmp_path: Path) -> None:
    # given data dirs that do not exist yet
    for_key, for_db = tmp_path / "keys" / "data", tmp_path / "db" / "data"
    # when the key file and the SQLite database are first made
    SecretBox.from_settings(make_settings(for_key, "sqlite+aiosqlite://", secret_keys=None))
    engine = create_engine(f"sqlite+aiosqlite:///{for_db / 'tocsin.db'}")
    await engine.dispose()
    # then only their owner may enter them
    assert stat.S_IMODE(for_key.stat().st_mode) == 0o700
    assert stat.S_IMODE(for_db.stat().st_mode) == 0o700

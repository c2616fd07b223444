"""Settings: every TOCSIN_* variable is parsed once, and a bad value stops start-up with
a ConfigurationError that names the variable and does not repeat its value."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from tocsin.settings import ConfigurationError, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TOCSIN_* variable from the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith("TOCSIN_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def load(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Settings:
    for name, value in variables.items():
        monkeypatch.setenv(f"TOCSIN_{name}", value)
    return load_settings()


def refused(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load(monkeypatch, **variables)
    return str(caught.value)


# -- defaults --------------------------------------------------------------------------


def test_defaults_are_the_contracts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # given no TOCSIN_* variable, when the settings are loaded
    settings = load(monkeypatch)
    # then every default is the one the contract names
    assert settings.data_dir == Path("./tocsin-data")
    assert settings.database_url is None
    assert settings.sqlalchemy_url == f"sqlite+aiosqlite:///{tmp_path / 'tocsin-data/tocsin.db'}"
    assert settings.is_sqlite
    assert settings.key_file == Path("./tocsin-data/secret.key")
    assert settings.secret_keys is None
    assert settings.bootstrap_token is None
    assert settings.allowed_private_networks == ()
    assert settings.delivery_timeout == 10
    assert settings.retry_base_delay == 5
    assert settings.digest_intervals == {"MEDIUM": 300, "LOW": 900, "INFO": 3600}
    assert settings.telegram_api_base == "https://api.telegram.org"
    assert settings.message_prefix == "[Tocsin]"
    assert settings.emit_rate_limit == 0  # unlimited
    assert settings.emit_queue_limit == 10_000


def test_database_url_selects_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+asyncpg://tocsin:pw@db.example.com/tocsin"
    settings = load(monkeypatch, DATABASE_URL=url)
    assert settings.sqlalchemy_url == url
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    "value",
    [
        "mysql://x",
        "postgresql://tocsin:s3cr3t-pw@db/tocsin",  # no async driver
        "sqlite:///tmp/tocsin.db",
        "postgresql+asyncpg://tocsin:s3cr3t-pw@db:port/tocsin",
        "tocsin",
    ],
)
def test_a_database_url_tocsin_cannot_use_is_refused_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = refused(monkeypatch, DATABASE_URL=value)
    assert message.startswith("TOCSIN_DATABASE_URL is invalid: ")
    assert "postgresql+asyncpg://USER:PASSWORD@HOST" in message
    assert "s3cr3t" not in message and value not in message


def test_a_blank_database_url_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(monkeypatch, DATABASE_URL=" ").database_url is None
    url = "sqlite+aiosqlite:////var/lib/tocsin/tocsin.db"
    assert load(monkeypatch, DATABASE_URL=url).sqlalchemy_url == url


def test_data_dir_places_database_and_key_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = load(monkeypatch, DATA_DIR=str(tmp_path / "state"))
    assert settings.sqlalchemy_url == f"sqlite+aiosqlite:///{tmp_path / 'state' / 'tocsin.db'}"
    assert settings.key_file == tmp_path / "state" / "secret.key"


def test_secrets_are_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, SECRET_KEYS="k-secret-value", BOOTSTRAP_TOKEN="bootstrap-value")
    assert settings.bootstrap_token is not None
    assert settings.bootstrap_token.get_secret_value() == "bootstrap-value"
    shown = repr(settings) + str(settings)
    assert "k-secret-value" not in shown and "bootstrap-value" not in shown


def test_blank_bootstrap_token_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # given TOCSIN_BOOTSTRAP_TOKEN= (empty, as docker env files often leave it), then it is
    # unset: otherwise no token would be accepted and the first start would print none
    assert load(monkeypatch, BOOTSTRAP_TOKEN="").bootstrap_token is None
    assert load(monkeypatch, BOOTSTRAP_TOKEN="   ").bootstrap_token is None


# -- networks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ()),
        ("10.0.0.0/8", ("10.0.0.0/8",)),
        (" 10.0.0.0/8 , 192.168.1.0/24 ,", ("10.0.0.0/8", "192.168.1.0/24")),
        ("127.0.0.1", ("127.0.0.1/32",)),
        ("fd00::/8,::1", ("fd00::/8", "::1/128")),
        ("10.1.2.3/8", ("10.0.0.0/8",)),  # host bits are tolerated, not refused
    ],
)
def test_allowed_private_networks_parse(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[str, ...]
) -> None:
    settings = load(monkeypatch, ALLOWED_PRIVATE_NETWORKS=value)
    assert settings.allowed_private_networks == tuple(ipaddress.ip_network(n) for n in expected)


@pytest.mark.parametrize("value", ["10.0.0.0/99", "not-a-network", "10.0.0.0/8,300.1.1.1"])
def test_bad_network_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = refused(monkeypatch, ALLOWED_PRIVATE_NETWORKS=value)
    assert message.startswith("TOCSIN_ALLOWED_PRIVATE_NETWORKS is invalid")
    assert "CIDR" in message
    assert value.split(",")[-1] not in message  # the value is not repeated
    assert "\n" not in message


def test_bad_network_names_its_position(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused(monkeypatch, ALLOWED_PRIVATE_NETWORKS="10.0.0.0/8, 172.16.0.0/33")
    assert "item 2" in message


# -- digest intervals --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("MEDIUM=300,LOW=900,INFO=3600", {"MEDIUM": 300, "LOW": 900, "INFO": 3600}),
        ("MEDIUM=60", {"MEDIUM": 60, "LOW": 900, "INFO": 3600}),  # the others keep defaults
        (" low = 120 , info=7200 ", {"MEDIUM": 300, "LOW": 120, "INFO": 7200}),
        ("", {"MEDIUM": 300, "LOW": 900, "INFO": 3600}),
        ("INFO=1,INFO=2", {"MEDIUM": 300, "LOW": 900, "INFO": 2}),  # the last one wins
        ("INFO=2592000", {"MEDIUM": 300, "LOW": 900, "INFO": 2592000}),  # 30 days
    ],
)
def test_digest_intervals_parse(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: dict[str, int]
) -> None:
    assert load(monkeypatch, DIGEST_INTERVALS=value).digest_intervals == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("CRITICAL=10", "PRIORITY=SECONDS"),  # realtime priorities have no digest
        ("HIGH=10", "PRIORITY=SECONDS"),
        ("MEDIUM", "PRIORITY=SECONDS"),
        ("MEDIUM=soon", "integer"),
        ("MEDIUM=1.5", "integer"),
        ("LOW=0", "seconds must be"),
        ("LOW=-5", "seconds must be"),
        ("INFO=99999999999999999999", "seconds must be"),  # would overflow a timedelta
    ],
)
def test_bad_digest_intervals_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    message = refused(monkeypatch, DIGEST_INTERVALS=value)
    assert message.startswith("TOCSIN_DIGEST_INTERVALS is invalid")
    assert says in message


# -- timeouts and delays -------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("2.5", 2.5), ("600", 600), ("0.1", 0.1)])
def test_delivery_timeout_parses(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: float
) -> None:
    assert load(monkeypatch, DELIVERY_TIMEOUT=value).delivery_timeout == expected


@pytest.mark.parametrize("value", ["abc", "0", "-1", "601", "nan", "inf", ""])
def test_bad_delivery_timeout_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    message = refused(monkeypatch, DELIVERY_TIMEOUT=value)
    assert message.startswith("TOCSIN_DELIVERY_TIMEOUT is invalid")
    assert "\n" not in message


def test_retry_base_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(monkeypatch, RETRY_BASE_DELAY="0").retry_base_delay == 0
    assert load(monkeypatch, RETRY_BASE_DELAY="30").retry_base_delay == 30
    assert refused(monkeypatch, RETRY_BASE_DELAY="-1").startswith(
        "TOCSIN_RETRY_BASE_DELAY is invalid"
    )
    assert refused(monkeypatch, RETRY_BASE_DELAY="later").startswith(
        "TOCSIN_RETRY_BASE_DELAY is invalid"
    )


# -- Telegram base URL and message prefix ------------------------------------------------


def test_telegram_api_base(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, TELEGRAM_API_BASE="http://127.0.0.1:8081/")
    assert settings.telegram_api_base == "http://127.0.0.1:8081"  # no trailing slash
    for bad in ("api.telegram.org", "ftp://api.telegram.org", "https://"):
        assert refused(monkeypatch, TELEGRAM_API_BASE=bad).startswith(
            "TOCSIN_TELEGRAM_API_BASE is invalid"
        )


def test_message_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(monkeypatch, MESSAGE_PREFIX="[Ops]").message_prefix == "[Ops]"
    assert load(monkeypatch, MESSAGE_PREFIX="").message_prefix == ""
    assert refused(monkeypatch, MESSAGE_PREFIX="x" * 65).startswith(
        "TOCSIN_MESSAGE_PREFIX is invalid"
    )
    # it starts e-mail subjects: a line break would inject a header
    assert refused(monkeypatch, MESSAGE_PREFIX="[Ops]\r\nBcc: x@example.com").startswith(
        "TOCSIN_MESSAGE_PREFIX is invalid"
    )


def test_emit_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, EMIT_RATE_LIMIT="2.5", EMIT_QUEUE_LIMIT="500")
    assert (settings.emit_rate_limit, settings.emit_queue_limit) == (2.5, 500)
    for name, bad in (("EMIT_RATE_LIMIT", "-1"), ("EMIT_RATE_LIMIT", "fast")):
        assert refused(monkeypatch, **{name: bad}).startswith(f"TOCSIN_{name} is invalid")
    monkeypatch.delenv("TOCSIN_EMIT_RATE_LIMIT")
    for bad in ("0", "-5", "many"):
        assert refused(monkeypatch, EMIT_QUEUE_LIMIT=bad).startswith(
            "TOCSIN_EMIT_QUEUE_LIMIT is invalid"
        )


def test_lease_grace_sets_how_long_a_dead_workers_claim_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load(monkeypatch).lease_grace == 15
    assert load(monkeypatch, LEASE_GRACE="6").lease_grace == 6
    # shorter than a send that ignores its timeout is given: another worker would re-send
    # a delivery still in flight
    assert "LEASE_GRACE" in refused(monkeypatch, LEASE_GRACE="5").upper()

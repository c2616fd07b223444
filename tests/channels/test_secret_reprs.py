"""No repr or str of anything in ``tocsin.channels`` shows a secret value: a log line or
a traceback that prints one of these objects must not leak what it carries."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any

import pytest

import tocsin.channels
from tests.channels import CANARY
from tocsin.channels.base import Destination
from tocsin.channels.email import SmtpSettings

SECRET_NAMES = ("password", "secret", "token", "headers", "url", "key")
"A dataclass field whose name contains one of these carries a secret."


def channel_classes() -> list[type]:
    """Every class defined in a module of ``tocsin.channels``."""
    found = []
    for info in pkgutil.iter_modules(tocsin.channels.__path__, "tocsin.channels."):
        module = importlib.import_module(info.name)
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value) and value.__module__ == module.__name__
        ]
    return found


def destination() -> Destination:
    return Destination(
        channel_id="chn_1",
        kind="WEBHOOK",
        name="hook",
        config={"smtp_host": "smtp.example.com", "username": "bot"},
        secrets={
            "url": f"https://hooks.example.com/services/{CANARY}",
            "password": f"pw-{CANARY}",
            "signing_secret": f"whsec_{CANARY}",
            "headers": {"X-Api-Key": f"key-{CANARY}"},
            "bot_token": f"123:{CANARY}",
        },
    )


def smtp_settings() -> SmtpSettings:
    return SmtpSettings.from_destination(
        Destination(
            channel_id="chn_2",
            kind="EMAIL",
            name="mail",
            config={
                "smtp_host": "smtp.example.com",
                "username": "bot@example.com",
                "to": ["ops@example.com"],
            },
            secrets={"password": f"pw-{CANARY}"},
        )
    )


CARRIERS: dict[str, Any] = {
    "Destination": destination,
    "Destination.secrets": lambda: destination().secrets,
    "SmtpSettings": smtp_settings,
}


@pytest.mark.parametrize("name", sorted(CARRIERS))
def test_no_repr_or_str_shows_a_secret(name: str) -> None:
    value = CARRIERS[name]()

    for text in (repr(value), str(value), f"{value!r}", repr([value]), repr({"v": value})):
        assert CANARY not in text, text


def test_the_masked_forms_still_say_what_is_set() -> None:
    assert "'password': '**********'" in repr(destination().secrets)
    assert "smtp.example.com" in repr(smtp_settings())
    assert smtp_settings().password == f"pw-{CANARY}"  # hidden from repr, not lost


def test_every_dataclass_field_named_like_a_secret_is_kept_out_of_repr() -> None:
    # a new dataclass in channels/ that carries a secret must hide it to pass
    checked = []
    for cls in channel_classes():
        if not dataclasses.is_dataclass(cls):
            continue
        for field in dataclasses.fields(cls):
            if any(word in field.name for word in SECRET_NAMES):
                assert not field.repr, f"{cls.__name__}.{field.name} shows in repr"
                checked.append(f"{cls.__name__}.{field.name}")
    assert {"Destination.secrets", "SmtpSettings.password"} <= set(checked)

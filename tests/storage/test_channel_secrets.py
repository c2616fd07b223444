"""Opening a channel's secrets for a send: a ciphertext opened lately is not opened again,
and what each caller gets is its own."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet

from tocsin.settings import ConfigurationError
from tocsin.storage.channel_secrets import decrypt_secrets
from tocsin.storage.secretbox import SecretBox
from tocsin.storage.tables import ChannelRow


class CountingBox(SecretBox):
    def __init__(self, keys: list[bytes]) -> None:
        super().__init__(keys)
        self.opened = 0

    def decrypt(self, token: str) -> dict[str, Any]:
        self.opened += 1
        return super().decrypt(token)


def row_with(box: SecretBox, secrets: dict[str, Any] | None) -> ChannelRow:
    ciphertext = box.encrypt(secrets) if secrets is not None else None
    return ChannelRow(id="c1", kind="WEBHOOK", name="hook", secrets_ciphertext=ciphertext)


def test_the_same_ciphertext_is_opened_once_and_each_caller_gets_a_copy() -> None:
    box = CountingBox([Fernet.generate_key()])
    row = row_with(box, {"url": "https://hooks.example/T0/B0/canary"})
    first = decrypt_secrets(box, row)
    first["url"] = "changed by a caller"
    second = decrypt_secrets(box, row)
    assert second == {"url": "https://hooks.example/T0/B0/canary"}
    assert box.opened == 1


def test_new_secrets_are_a_new_ciphertext_and_are_opened_anew() -> None:
    box = CountingBox([Fernet.generate_key()])
    assert decrypt_secrets(box, row_with(box, {"token": "old"})) == {"token": "old"}
    assert decrypt_secrets(box, row_with(box, {"token": "new"})) == {"token": "new"}
    assert box.opened == 2


def test_no_secrets_open_to_nothing() -> None:
    box = CountingBox([Fernet.generate_key()])
    assert decrypt_secrets(box, row_with(box, None)) == {}
    assert box.opened == 0


def test_a_box_without_the_key_still_refuses_what_another_box_opened() -> None:
    box = SecretBox([Fernet.generate_key()])
    row = row_with(box, {"password": "canary"})
    assert decrypt_secrets(box, row) == {"password": "canary"}
    with pytest.raises(ConfigurationError, match="cannot decrypt"):
        decrypt_secrets(SecretBox([Fernet.generate_key()]), row)

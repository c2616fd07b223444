"""Opening a stored channel's secrets: the one place that decrypts them for sending."""

from __future__ import annotations

from typing import Any

from tocsin.storage.secretbox import SecretBox
from tocsin.storage.tables import ChannelRow


def decrypt_secrets(box: SecretBox, row: ChannelRow) -> dict[str, Any]:
    """The plaintext secrets of ``row`` ({} when it has none); keep them out of any answer."""
    return box.decrypt(row.secrets_ciphertext) if row.secrets_ciphertext else {}

"""Opening a stored channel's secrets: the one place that decrypts them for sending."""

from __future__ import annotations

import functools
from typing import Any

from tocsin.storage.secretbox import SecretBox
from tocsin.storage.tables import ChannelRow


def decrypt_secrets(box: SecretBox, row: ChannelRow) -> dict[str, Any]:
    """The plaintext secrets of ``row`` ({} when it has none); keep them out of any answer.

    A ciphertext opened lately is not opened again (a Fernet token's HMAC and AES were 5 %
    of a worker's CPU draining one channel): the same token under the same box always
    opens to the same secrets. Each caller gets its own copy."""
    if not row.secrets_ciphertext:
        return {}
    return dict(_opened(box, row.secrets_ciphertext))


@functools.lru_cache(maxsize=256)
def _opened(box: SecretBox, token: str) -> dict[str, Any]:
    return box.decrypt(token)

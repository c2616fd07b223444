"""SecretBox: encryption at rest of every stored secret (MultiFernet)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from secrets import token_hex
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tocsin.settings import ConfigurationError, Settings
from tocsin.storage.redaction import secret_registry

KEY_CHECK_PLAINTEXT = "tocsin-key-check"


class SecretBox:
    """Encrypts and decrypts JSON objects of secrets; the newest key encrypts."""

    def __init__(self, keys: list[bytes], *, source: str = "TOCSIN_SECRET_KEYS") -> None:
        if not keys:
            raise ConfigurationError(f"{source} is invalid: no key given")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except ValueError:
                raise ConfigurationError(
                    f"{source} is invalid: key {position} is not a Fernet key "
                    "(URL-safe base64 of 32 bytes; `tocsin keys generate` makes one)"
                ) from None
        self._fernet = MultiFernet(fernets)
        secret_registry.add(*(key.decode(errors="replace") for key in keys))

    def __repr__(self) -> str:
        return "SecretBox('**********')"

    def encrypt(self, secrets: dict[str, Any]) -> str:
        """Ciphertext of ``secrets``; their values are redacted from logs from now on."""
        secret_registry.add_secrets(secrets)
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            plaintext = self._fernet.decrypt(token.encode())
        except InvalidToken:
            raise ConfigurationError(
                "TOCSIN_SECRET_KEYS cannot decrypt the stored secrets: "
                "the key they were encrypted with is not among the configured keys"
            ) from None
        value: dict[str, Any] = json.loads(plaintext)
        secret_registry.add_secrets(value)
        return value

    def rotate(self, token: str) -> str:
        """Re-encrypt a token with the newest key (it must decrypt with one of the keys)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise ConfigurationError(
                "TOCSIN_SECRET_KEYS cannot decrypt a stored secret; nothing was rotated"
            ) from None

    def key_check_token(self) -> str:
        return self._fernet.encrypt(KEY_CHECK_PLAINTEXT.encode()).decode()

    def opens(self, token: str) -> bool:
        try:
            return self._fernet.decrypt(token.encode()).decode() == KEY_CHECK_PLAINTEXT
        except InvalidToken:
            return False

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """Keys from TOCSIN_SECRET_KEYS, else from (or into) a 0600 key file in the data dir."""
        if settings.secret_keys is not None:
            raw = settings.secret_keys.get_secret_value()
            return cls([k.strip().encode() for k in raw.split(",") if k.strip()])
        path = settings.key_file
        return cls([_read_or_create_key_file(path)], source=f"the key file {path}")


def generate_key() -> str:
    return Fernet.generate_key().decode()


def _read_or_create_key_file(path: Path) -> bytes:
    if not path.exists():
        _create_key_file(path)
    key = path.read_bytes().strip()
    if not key:
        raise ConfigurationError(f"the key file {path} is empty")
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key to ``path`` (mode 0600) unless another process just did.

    The key is written in full to a private temporary file which is then linked into
    place: a process starting at the same moment never reads a half-written key, and
    only one key wins (the loser reads the winner's).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)

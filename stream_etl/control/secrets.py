"""Encryption at rest for connection secrets (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from ``STREAM_ETL_CONTROL_KEY`` or a key file (default
``~/.stream-etl/control.key``, created by ``stream-etl connections new-key``). A key
file readable by its group or others is refused: run ``chmod 600`` on it. The CLI
resolves the key at the edge and hands a :class:`SecretBox` down.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from stream_etl.errors import ConfigurationError

KEY_VARIABLE = "STREAM_ETL_CONTROL_KEY"
KEY_FILE_VARIABLE = "STREAM_ETL_CONTROL_KEY_FILE"
DEFAULT_KEY_FILE = Path("~/.stream-etl/control.key")
#: What the CLI, the API and logs show instead of a secret.
MASK = "********"


def new_key_file(path: Path) -> Path:
    """Write a fresh key to ``path`` with mode 0600; refuses to overwrite an existing key."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        msg = f"key file {path} exists: keep it (its key decrypts the stored secrets) or move it away first"
        raise ConfigurationError(msg) from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key() + b"\n")
    return path


def read_key_file(path: Path) -> bytes:
    path = path.expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        msg = (
            f"no encryption key: key file {path} does not exist. Create one with `stream-etl connections new-key` "
            f"or set {KEY_VARIABLE}"
        )
        raise ConfigurationError(msg) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        msg = f"key file {path} is readable by its group or others (mode {stat.S_IMODE(mode):o}): run chmod 600 {path}"
        raise ConfigurationError(msg)
    return path.read_bytes().strip()


class SecretBox:
    """Encrypts a dict of secrets into one token and back."""

    def __init__(self, key: bytes | str) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            msg = f"the control plane key is not a Fernet key (32 url-safe base64 bytes); create one with `stream-etl connections new-key` ({exc})"
            raise ConfigurationError(msg) from None

    @classmethod
    def from_settings(cls, *, key: str | None, key_file: Path | None) -> SecretBox:
        """From a key given directly (``STREAM_ETL_CONTROL_KEY``), else from the key file."""
        if key:
            return cls(key.strip())
        return cls(read_key_file(key_file or DEFAULT_KEY_FILE))

    def encrypt(self, secrets: dict[str, Any]) -> str:
        if not secrets:
            return ""
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        if not token:
            return {}
        try:
            found: dict[str, Any] = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            msg = "stored secrets cannot be decrypted with this key: use the key they were stored with"
            raise ConfigurationError(msg) from None
        return found

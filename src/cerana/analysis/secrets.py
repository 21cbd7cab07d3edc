"""Analyzer secrets: which values are secret, encryption at rest, masking.

A configuration value is secret when its name says so (``key``,
``password``, ``secret``, ``token``, as cortexutils redacts them). Secret
values are stored encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under
a key from the ``analyzer_key`` setting, rendered as `MASK` by the API,
replaced by ``"REMOVED"`` in a stored job input, and scrubbed from error
text an analyzer prints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

MASK = "********"
REMOVED = "REMOVED"
_SECRET_WORDS = ("key", "password", "secret", "token")
_ENCRYPTED = "$encrypted"


def is_secret(name: str) -> bool:
    """Tells whether a configuration item named ``name`` holds a secret."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


class SecretBox:
    """Encrypts and decrypts the secret values of analyzer configurations."""

    def __init__(self, key_material: str) -> None:
        """Uses ``key_material`` as a Fernet key when it is one, else
        derives a key from it (SHA-256)."""
        self._fernet = Fernet(_fernet_key(key_material))

    def seal(self, configuration: Mapping[str, Any]) -> dict[str, Any]:
        """Returns the configuration with secret values encrypted."""
        return {
            name: self._seal_value(value) if is_secret(name) else value
            for name, value in configuration.items()
        }

    def open(self, configuration: Mapping[str, Any]) -> dict[str, Any]:
        """Returns the configuration with secret values decrypted; a value
        that cannot be decrypted (key changed) becomes None."""
        return {name: self._open_value(value) for name, value in configuration.items()}

    def _seal_value(self, value: Any) -> Any:
        if value is None or value == "" or value == []:
            return value
        token = self._fernet.encrypt(repr_json(value).encode("utf-8"))
        return {_ENCRYPTED: token.decode("ascii")}

    def _open_value(self, value: Any) -> Any:
        if not (isinstance(value, dict) and _ENCRYPTED in value):
            return value
        try:
            plain = self._fernet.decrypt(value[_ENCRYPTED].encode("ascii"))
        except (InvalidToken, ValueError):
            return None
        return json.loads(plain)


def repr_json(value: Any) -> str:
    return json.dumps(value)


def _fernet_key(material: str) -> bytes:
    try:
        if len(base64.urlsafe_b64decode(material.encode("ascii"))) == 32:
            return material.encode("ascii")
    except (binascii.Error, ValueError, UnicodeEncodeError):
        pass
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest)


def masked(configuration: Mapping[str, Any]) -> dict[str, Any]:
    """Returns the configuration as the API shows it: secrets as MASK."""
    return {
        name: (MASK if value not in (None, "", []) else value)
        if is_secret(name)
        else value
        for name, value in configuration.items()
    }


def redacted(document: Any) -> Any:
    """Returns a copy of a job input with every secret value replaced."""
    if isinstance(document, Mapping):
        return {
            k: REMOVED if is_secret(str(k)) and v is not None else redacted(v)
            for k, v in document.items()
        }
    if isinstance(document, list):
        return [redacted(v) for v in document]
    return document


def secret_values(configuration: Mapping[str, Any]) -> list[str]:
    """Returns the secret strings of a configuration (to scrub from text)."""
    found: list[str] = []
    for name, value in configuration.items():
        if is_secret(name):
            found.extend(_strings(value))
    return [s for s in found if len(s) >= 4]


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Returns ``text`` with every secret value replaced by REMOVED."""
    for secret in secrets:
        text = text.replace(secret, REMOVED)
    return text

"""Encryption at rest of space secrets (design.md §6), with Fernet from `cryptography`.

A stored value is "fernet:" followed by a Fernet token (AES-128-CBC and HMAC-SHA256, with its
own timestamp and IV), so a dump of the database shows no secret in clear. The keys come from
SECRETS_ENCRYPTION_KEY (hub/settings.py): the first encrypts, all decrypt (MultiFernet), which
is how a key is rotated without downtime. A value without the prefix is a clear one written
before encryption existed; the migration that introduced this encrypts those.
"""
from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "fernet:"


class SecretUnreadable(Exception):
    """A stored secret that none of the configured keys decrypts (a key was dropped too early)."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        # DEBUG only (settings refuse to start otherwise): a key derived from SECRET_KEY.
        keys = (base64.urlsafe_b64encode(hashlib.sha256(b"demohub-secrets:" + secret_key.encode()).digest()).decode(),)
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"SECRETS_ENCRYPTION_KEY holds a key that is not a Fernet key: {exc}") from None


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.SECRETS_ENCRYPTION_KEYS), settings.SECRET_KEY)


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


def encrypt(value: str) -> str:
    return PREFIX + fernet().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(stored: str) -> str:
    if not is_encrypted(stored):
        return stored  # written in clear before encryption existed (the migration encrypts it)
    try:
        return fernet().decrypt(stored[len(PREFIX):].encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SecretUnreadable("a stored secret cannot be decrypted with SECRETS_ENCRYPTION_KEY; "
                               "put the key it was written with back in the list") from None


def rotate(stored: str) -> str:
    """The value re-encrypted with the first key (MultiFernet.rotate); a clear one encrypted."""
    if not is_encrypted(stored):
        return encrypt(stored)
    return PREFIX + fernet().rotate(stored[len(PREFIX):].encode("ascii")).decode("ascii")

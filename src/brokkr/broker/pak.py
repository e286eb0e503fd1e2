"""Prefixed API keys (PAKs): `brokkr_<short>_<long>`, stored as SHA-256 of `<long>`.

Byte-compatible with Brokkr v1: the stored hash is the lowercase hex SHA-256 of
the long part only, so hashes made by either implementation verify in the other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

PREFIX = "brokkr"
SHORT_LENGTH = 8
LONG_LENGTH = 32
_ALPHABET = string.ascii_letters + string.digits

# The PAK published in the reference documentation; never valid as a real admin key.
PUBLIC_DEFAULT_PAK = "brokkr_BR3rVsDa_GK3QN7CDUzYc6iKgMkJ98M2WSimM5t6U8"
PUBLIC_DEFAULT_HASH = "4c697273df3d764cba950bb5c04368097685f09259f5bd880d892cf1ff9f4cdd"


class InvalidPak(ValueError):
    """The value is not shaped like a PAK."""


@dataclass(frozen=True)
class NewPak:
    """A freshly minted PAK and the hash to store for it."""

    pak: str
    hash: str


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def long_part(pak: str) -> str:
    """The secret part of a PAK; raise InvalidPak when the shape is wrong."""
    parts = pak.split("_")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise InvalidPak("expected brokkr_<short>_<long>")
    return parts[2]


def looks_like_pak(value: str) -> bool:
    """Whether `value` has the brokkr_<short>_<long> shape."""
    try:
        long_part(value)
    except InvalidPak:
        return False
    return True


def hash_pak(pak: str) -> str:
    """The stored form of a PAK: lowercase hex SHA-256 of its long part."""
    return hashlib.sha256(long_part(pak).encode()).hexdigest()


def generate() -> NewPak:
    """Mint a new random PAK (CSPRNG) and its hash."""
    pak = f"{PREFIX}_{_random(SHORT_LENGTH)}_{_random(LONG_LENGTH)}"
    return NewPak(pak=pak, hash=hash_pak(pak))


def matches(pak: str, stored_hash: str) -> bool:
    """Constant-time check of a PAK against a stored hash."""
    try:
        candidate = hash_pak(pak)
    except InvalidPak:
        return False
    return hmac.compare_digest(candidate, stored_hash.lower())


def is_valid_hash(value: str) -> bool:
    """Whether `value` looks like a stored PAK hash (64 hex characters)."""
    return len(value) == 64 and all(c in string.hexdigits for c in value)

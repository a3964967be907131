"""The relay's signing keys: Ed25519, named by id, rotated without breaking live tokens.

Rule: the newest key signs; every key verifies until ``retired`` (set when a newer key
replaced it, plus the longest token lifetime), so tokens minted just before a rotation
stay good until they expire. Several relay processes given the same key set accept each
other's tokens. The set is stored as JSON (``to_json`` / ``from_json``); the relay keeps
the file 0600. Pure apart from key generation, which takes the caller's randomness
through ``cryptography``'s generator.
"""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pyseto import Key, KeyInterface

RETIRE_AFTER = 3600.0  # seconds an old key keeps verifying after rotation (> every token lifetime)


@dataclass(frozen=True, slots=True)
class RelayKey:
    kid: str
    private_pem: bytes
    created: float
    retired: float | None = None  # no verification at or after this time


def _public_pem(private_pem: bytes) -> bytes:
    private = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# Loading a key from its PEM costs about as much as the signature it then checks: a relay
# checks and mints several tokens per session, so each key's objects are made once. A
# PEM names one key for ever, so the caches hold nothing that could go stale.
@functools.lru_cache(maxsize=64)
def _signer(private_pem: bytes) -> KeyInterface:
    return Key.new(4, "public", private_pem)


@functools.lru_cache(maxsize=64)
def _verifier(private_pem: bytes) -> KeyInterface:
    return Key.new(4, "public", _public_pem(private_pem))


def new_key(now: float) -> RelayKey:
    """A fresh Ed25519 key; its id is derived from its public key."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = base64.urlsafe_b64encode(raw[:9]).decode()
    return RelayKey(kid=kid, private_pem=pem, created=now)


@dataclass
class KeySet:
    """Keys by id; the last one signs (see module doc)."""

    keys: list[RelayKey] = field(default_factory=list)

    @classmethod
    def generate(cls, now: float) -> KeySet:
        return cls([new_key(now)])

    def rotate(self, now: float, retire_after: float = RETIRE_AFTER) -> RelayKey:
        """Add a new signing key; the previous ones verify for ``retire_after`` more seconds."""
        self.keys = [k if k.retired is not None else replace(k, retired=now + retire_after) for k in self.keys]
        key = new_key(now)
        self.keys.append(key)
        return key

    def signing_key(self) -> tuple[str, KeyInterface]:
        key = self.keys[-1]
        return key.kid, _signer(key.private_pem)

    def verifying_key(self, kid: str, now: float) -> KeyInterface | None:
        for key in self.keys:
            if key.kid == kid and (key.retired is None or now < key.retired):
                return _verifier(key.private_pem)
        return None

    def to_json(self) -> str:
        items = [{"kid": k.kid, "private_pem": k.private_pem.decode(), "created": k.created, "retired": k.retired}
                 for k in self.keys]  # fmt: skip
        return json.dumps({"keys": items}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> KeySet:
        data: Any = json.loads(text)
        keys = [RelayKey(k["kid"], k["private_pem"].encode(), float(k["created"]), k.get("retired"))
                for k in data["keys"]]  # fmt: skip
        if not keys:
            raise ValueError("a key set needs at least one key")
        return cls(keys)


def public_key_raw(private: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of a device's public key (what the relay stores)."""
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_raw(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)

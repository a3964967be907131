"""Session ids that name their owner, so a stranger cannot register someone else's (DESIGN.md rule 7).

Rule: an *owned* session id is 32 bytes, base64url (43 characters): 16 random bytes,
then the first 16 bytes of SHA-256 over a label, the owner's device id and those random
bytes. A session-initiation token registers an owned id only when its subject (the
device id the relay minted it for) is the one the id commits to. The relay checks this
from the id and the token alone, keeping nothing: so a host coming back after a network
outage, or after the relay restarted, may register its session id again with a fresh
initiation token, and nobody else may, even while no host holds it. Finding another
device id with the same tag is a second preimage of 128 bits.

Ids of any other length (16 random bytes, as hosts made them before) are first come,
first served, as they always were.

Pure: randomness is the caller's ``random_bytes``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

LABEL = b"tether/v1/session-owner\x00"
RANDOM_BYTES = 16
TAG_BYTES = 16
OWNED_LENGTH = 43  # characters of base64url without padding for 32 bytes


def _tag(owner: str, nonce: bytes) -> bytes:
    return hashlib.sha256(LABEL + owner.encode() + b"\x00" + nonce).digest()[:TAG_BYTES]


def owned_session_id(owner: str, random_bytes: Callable[[int], bytes]) -> str:
    """A new session id that only ``owner`` (a device id) may register."""
    nonce = random_bytes(RANDOM_BYTES)
    return base64.urlsafe_b64encode(nonce + _tag(owner, nonce)).rstrip(b"=").decode()


def is_owned(session_id: str) -> bool:
    """Whether ``session_id`` has the owned form (it then names its owner)."""
    return len(session_id) == OWNED_LENGTH


def may_register(owner: str, session_id: str) -> bool:
    """Whether the device ``owner`` may register ``session_id``: any id of the old form, an owned one if its own."""
    if not is_owned(session_id):
        return True
    try:
        raw = base64.urlsafe_b64decode(session_id + "=")
    except ValueError:
        return False
    nonce, tag = raw[:RANDOM_BYTES], raw[RANDOM_BYTES:]
    return len(raw) == RANDOM_BYTES + TAG_BYTES and hmac.compare_digest(tag, _tag(owner, nonce))

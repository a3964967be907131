"""Device signatures: the proof a paired device gives of its key, and signed approvals (docs/protocol.md section 5).

DESIGN.md rule 1: an approval from a device is an Ed25519 signature by the paired
device's key over the exact tool call the device displayed, the chosen option, the
session and an expiry of about two minutes; the host verifies it, not the relay. The
browser signs with WebCrypto (``viewer/static/device.js``), the host verifies here with
``cryptography``. Everything here is pure: no socket, no clock (``now`` is a parameter).

Byte strings signed (``|`` is concatenation, ``u16``/``u64`` big-endian)::

    device proof   "tether-device-v1" | 0x00 | T                   T: the handshake transcript (crypto.transcript)
    approval       "tether-approval-v1" | 0x00 | u16(len sid) | sid
                   | u16(len approval id) | approval id | digest (32) | u16(len option) | option | u64(expires ms)

``digest`` is SHA-256 of the canonical JSON (keys sorted, no spaces, UTF-8, non-ASCII
kept) of what the device was shown: the approval entry without the fields that change
when it is answered, and the tool call entry it is about without its status.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tether.errors import RemoteProtocolError
from tether.protocol.crypto import b64url, unb64url

JSON = dict[str, Any]

DEVICE_PROOF = b"tether-device-v1\x00"
APPROVAL = b"tether-approval-v1\x00"
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
DEVICE_NAME_MAX = 80
APPROVAL_LIFETIME = 120.0  # seconds a device's signed approval is good for
CLOCK_SKEW = 60.0  # a phone's clock may be this far behind or ahead of the host's
# Fields of an approval entry that change when it is answered: not part of what was shown.
MUTABLE_APPROVAL = ("state", "outcome", "decided_by")
MUTABLE_TOOL_CALL = ("status",)


def b64(data: bytes) -> str:
    return b64url(data)


def unb64(text: object, size: int, what: str) -> bytes:
    """Canonical unpadded base64url of exactly ``size`` bytes, else RemoteProtocolError."""
    return unb64url(text, size, what)


def device_id(public_key: bytes) -> str:
    """A device's name in lists and logs: the first 9 bytes of SHA-256 of its public key (12 characters)."""
    return b64(hashlib.sha256(public_key).digest()[:9])


def _u16(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise RemoteProtocolError("a signed field is longer than 65535 bytes")
    return struct.pack(">H", len(data)) + data


def _plain(value: Any) -> Any:
    """Integral floats as integers, as JSON.stringify writes them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    """The canonical JSON bytes both sides hash (JSON.stringify of a key-sorted copy, in the browser).

    Strings are taken as the viewer received them: a lone surrogate went out as U+FFFD
    (protocol/messages.py), so it is hashed as U+FFFD here too.
    """
    text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode()


def shown(approval: JSON, tool_call: JSON | None) -> JSON:
    """What a device was shown for an approval: the parts of both entries that do not change when answered."""
    return {
        "approval": {k: v for k, v in approval.items() if k not in MUTABLE_APPROVAL},
        "tool_call": None if tool_call is None else {k: v for k, v in tool_call.items() if k not in MUTABLE_TOOL_CALL},
    }


def approval_digest(approval: JSON, tool_call: JSON | None) -> bytes:
    return hashlib.sha256(canonical(shown(approval, tool_call))).digest()


def approval_message(session_id: str, approval_id: str, digest: bytes, option_id: str, expires_ms: int) -> bytes:
    return (
        APPROVAL
        + _u16(session_id.encode())
        + _u16(approval_id.encode())
        + digest
        + _u16(option_id.encode())
        + struct.pack(">Q", expires_ms)
    )


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class DeviceClaim:
    """What a viewer says about itself in its ``hello``: its device key, a name, and a proof it holds the key."""

    public_key: bytes
    name: str
    proof: bytes

    @property
    def id(self) -> str:
        return device_id(self.public_key)

    @classmethod
    def parse(cls, device: object) -> DeviceClaim:
        """From the ``device`` field of a hello; RemoteProtocolError when malformed."""
        if not isinstance(device, dict) or set(device) != {"public_key", "name", "proof"}:
            raise RemoteProtocolError("hello.device must have public_key, name and proof")
        name = device["name"]
        if not isinstance(name, str) or not 1 <= len(name) <= DEVICE_NAME_MAX:
            raise RemoteProtocolError(f"a device name is 1 to {DEVICE_NAME_MAX} characters")
        return cls(
            public_key=unb64(device["public_key"], PUBLIC_KEY_SIZE, "device public key"),
            name=name,
            proof=unb64(device["proof"], SIGNATURE_SIZE, "device proof"),
        )

    def proves(self, transcript: bytes) -> bool:
        """True when the proof is this key's signature over this connection's handshake transcript."""
        return verify(self.public_key, self.proof, DEVICE_PROOF + transcript)


def check_approval(
    *,
    public_key: bytes,
    session_id: str,
    approval: JSON,
    tool_call: JSON | None,
    option_id: str,
    signature: str | None,
    expires_ms: int | None,
    now: float,
) -> str | None:
    """None when a device's decision is properly signed, else why it is refused (in words).

    ``now`` is the host's wall clock in seconds. The expiry must lie ahead (allowing for
    ``CLOCK_SKEW``) but no further than ``APPROVAL_LIFETIME`` + ``CLOCK_SKEW`` from now.
    """
    if signature is None or expires_ms is None:
        return "the decision is not signed by the device"
    try:
        raw = unb64(signature, SIGNATURE_SIZE, "approval signature")
    except RemoteProtocolError as exc:
        return str(exc)
    expires = expires_ms / 1000
    if expires < now - CLOCK_SKEW:
        return "the signed decision has expired"
    if expires > now + APPROVAL_LIFETIME + CLOCK_SKEW:
        return "the signed decision is good for too long"
    digest = approval_digest(approval, tool_call)
    if not verify(public_key, raw, approval_message(session_id, approval["id"], digest, option_id, expires_ms)):
        return "the signature does not match this request as shown (or another device signed it)"
    return None


class DeviceKey:
    """A device's own key and signatures: the Python twin of viewer/static/device.js (tether.testing uses it)."""

    def __init__(self, name: str = "test device", private: Ed25519PrivateKey | None = None) -> None:
        self.private = private or Ed25519PrivateKey.generate()
        self.public_key = self.private.public_key().public_bytes_raw()
        self.name = name
        self.id = device_id(self.public_key)

    def claim(self, transcript: bytes) -> JSON:
        """The ``device`` field of a hello on the connection whose handshake transcript this is."""
        proof = self.private.sign(DEVICE_PROOF + transcript)
        return {"public_key": b64(self.public_key), "name": self.name, "proof": b64(proof)}

    def sign(
        self, session_id: str, approval: JSON, tool_call: JSON | None, option_id: str, expires_ms: int
    ) -> str:
        digest = approval_digest(approval, tool_call)
        return b64(self.private.sign(approval_message(session_id, approval["id"], digest, option_id, expires_ms)))

"""A device proves it holds its key: an Ed25519 signature over a fresh, single-use challenge.

Rule: the host signs ``tether/v1/initiate``, the relay's origin, its device id, the time
and a random nonce. The relay accepts the proof once (the nonce goes to a NonceBook until
the proof could no longer be accepted), only within ``PROOF_WINDOW`` seconds of its own
clock, only for its own origin, and only with the public key it registered for that
device. Pure: time and randomness are parameters.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tether.auth.tokens import Refusal, new_nonce
from tether.errors import CredentialRefused

CONTEXT = "tether/v1/initiate"
PROOF_WINDOW = 60.0  # seconds either side of the relay's clock


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Proof:
    device: str
    origin: str
    time: float
    nonce: str
    signature: str

    def message(self) -> bytes:
        return "\n".join([CONTEXT, self.origin, self.device, repr(self.time), self.nonce]).encode()

    def to_json(self) -> dict[str, object]:
        return {"device": self.device, "origin": self.origin, "time": self.time, "nonce": self.nonce,
                "signature": self.signature}  # fmt: skip

    @classmethod
    def from_json(cls, data: object) -> Proof:
        try:
            assert isinstance(data, dict)
            proof = cls(str(data["device"]), str(data["origin"]), float(data["time"]), str(data["nonce"]),
                        str(data["signature"]))  # fmt: skip
        except (AssertionError, KeyError, TypeError, ValueError):
            raise CredentialRefused(Refusal.MALFORMED, "not a proof") from None
        return proof


def sign(private: Ed25519PrivateKey, device: str, origin: str, now: float,
         random_bytes: Callable[[int], bytes]) -> Proof:  # fmt: skip
    """A fresh proof for ``origin`` (the relay's scheme://host[:port])."""
    unsigned = Proof(device, origin, now, new_nonce(random_bytes), "")
    return Proof(device, origin, now, unsigned.nonce, _b64(private.sign(unsigned.message())))


def check(proof: Proof, public: Ed25519PublicKey, origin: str, now: float) -> None:
    """Raise CredentialRefused unless the proof is for ``origin``, fresh and signed by ``public``.

    Single use is the caller's: remember ``proof.nonce`` until ``proof.time + PROOF_WINDOW``.
    """
    if proof.origin != origin:
        raise CredentialRefused(Refusal.BAD_PROOF, "made for another relay")
    if abs(now - proof.time) > PROOF_WINDOW:
        raise CredentialRefused(Refusal.EXPIRED, "proof too old or from the future")
    try:
        public.verify(_unb64(proof.signature), proof.message())
    except (InvalidSignature, ValueError):
        raise CredentialRefused(Refusal.BAD_PROOF, "signature does not match the device key") from None


def dumps(proof: Proof) -> str:
    return json.dumps(proof.to_json())

"""Scoped short-lived credentials: PASETO v4.public tokens, one purpose each (DESIGN.md rule 1).

Rule: a token is good for exactly one purpose, one session and one role, until it expires.
The purpose is the token's PASETO *implicit assertion*: it is signed over but never
sent, so a token minted for one purpose fails the signature check for every other, by
construction rather than by a claim someone might forget to compare.

::

    purpose              minted for                      lifetime  checked
    session-initiation   a logged-in host device          ~2 min   single use (nonce)
    routing              one session and one role         ~10 min  renewed in-band; a renewal fences the last
    viewer-join          one session, in the URL fragment ~10 min  dies with the session (its generation)

Pure: time is a parameter (``now``, seconds), randomness comes from the caller's
``random_bytes``; nothing here reads a clock or touches I/O. Keys come from keys.py.
Every refusal raises ``CredentialRefused`` with one word from ``Refusal``, never the token.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pyseto

from tether.auth.keys import KeySet
from tether.errors import CredentialRefused


class Purpose(enum.StrEnum):
    INITIATE = "tether/v1/session-initiation"
    ROUTING = "tether/v1/routing"
    VIEWER_JOIN = "tether/v1/viewer-join"


LIFETIME: dict[Purpose, float] = {Purpose.INITIATE: 120.0, Purpose.ROUTING: 600.0, Purpose.VIEWER_JOIN: 600.0}


class Refusal(enum.StrEnum):
    """Why a credential was refused (counted by the relay under these names)."""

    MALFORMED = "malformed"  # not a v4.public token, bad footer or claims
    UNKNOWN_KEY = "unknown_key"  # signed by a key this relay does not hold (or retired)
    BAD_SIGNATURE = "bad_signature"  # forged, altered, or minted for another purpose
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REPLAYED = "replayed"  # a single-use token or proof seen before
    WRONG_SESSION = "wrong_session"
    WRONG_ROLE = "wrong_role"
    FENCED = "fenced"  # a newer routing token replaced this one
    REVOKED = "revoked"  # the device, account or session is gone
    BAD_PROOF = "bad_proof"  # the device's possession proof failed


CLOCK_SKEW = 30.0  # seconds a token's issue time may lie in the future (clocks of relay processes)


@dataclass(frozen=True, slots=True)
class Claims:
    """What a token says. ``session`` and ``role`` are empty where the purpose has none."""

    purpose: str
    subject: str  # the device id (initiation, host routing) or "viewer"
    issued: float
    expires: float
    nonce: str
    session: str = ""
    role: str = ""
    generation: str = ""  # the session's registration: a new host registration makes old ones stale

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()


def new_nonce(random_bytes: Callable[[int], bytes]) -> str:
    """128 random bits, base64url."""
    return base64.urlsafe_b64encode(random_bytes(16)).rstrip(b"=").decode()


def mint(
    keys: KeySet,
    purpose: Purpose,
    subject: str,
    now: float,
    random_bytes: Callable[[int], bytes],
    session: str = "",
    role: str = "",
    generation: str = "",
    lifetime: float | None = None,
) -> tuple[str, Claims]:
    """A token for ``purpose`` signed with the key set's current key, and its claims."""
    claims = Claims(
        purpose=purpose.value,  # the member's own string, not a copy per token (relay memory, issue 13)
        subject=subject,
        issued=now,
        expires=now + (LIFETIME[purpose] if lifetime is None else lifetime),
        nonce=new_nonce(random_bytes),
        session=session,
        role=role,
        generation=generation,
    )
    kid, private = keys.signing_key()
    footer = json.dumps({"kid": kid}, separators=(",", ":")).encode()
    token = pyseto.encode(private, claims.to_json(), footer=footer, implicit_assertion=str(purpose).encode())
    return token.decode(), claims


def verify(
    keys: KeySet,
    token: str,
    purpose: Purpose,
    now: float,
    session: str | None = None,
    role: str | None = None,
    grace: float = 0.0,
) -> Claims:
    """The claims of a valid token for ``purpose`` (and ``session``/``role`` when given).

    ``grace``: seconds past its expiry the token still counts (only to prove, with a fresh
    initiation token, which session a host held: admission.py).

    Raises CredentialRefused; single use, fencing and revocation are the caller's (they
    need state: NonceBook, the relay's session table, the account store).
    """
    kid = _kid(token)
    public = keys.verifying_key(kid, now)
    if public is None:
        raise CredentialRefused(Refusal.UNKNOWN_KEY)
    try:
        decoded = pyseto.decode(public, token, implicit_assertion=str(purpose).encode())
    except pyseto.VerifyError:
        raise CredentialRefused(Refusal.BAD_SIGNATURE) from None
    except (pyseto.PysetoError, ValueError):
        raise CredentialRefused(Refusal.MALFORMED) from None
    try:
        payload = decoded.payload
        data = json.loads(payload if isinstance(payload, bytes) else json.dumps(payload))
        claims = Claims(**data)
    except (ValueError, TypeError):
        raise CredentialRefused(Refusal.MALFORMED) from None
    if claims.purpose != purpose:  # cannot happen with a valid signature; kept as a second lock
        raise CredentialRefused(Refusal.BAD_SIGNATURE)
    if now >= claims.expires + grace:
        raise CredentialRefused(Refusal.EXPIRED)
    if claims.issued > now + CLOCK_SKEW:
        raise CredentialRefused(Refusal.NOT_YET_VALID)
    if session is not None and claims.session != session:
        raise CredentialRefused(Refusal.WRONG_SESSION)
    if role is not None and claims.role != role:
        raise CredentialRefused(Refusal.WRONG_ROLE)
    return claims


def _kid(token: str) -> str:
    parts = token.split(".")
    if len(parts) != 4 or parts[:2] != ["v4", "public"]:
        raise CredentialRefused(Refusal.MALFORMED)
    try:
        footer = json.loads(base64.urlsafe_b64decode(parts[3] + "=" * (-len(parts[3]) % 4)))
        kid = footer["kid"]
    except (ValueError, KeyError, TypeError):
        raise CredentialRefused(Refusal.MALFORMED) from None
    if not isinstance(kid, str):
        raise CredentialRefused(Refusal.MALFORMED)
    return kid

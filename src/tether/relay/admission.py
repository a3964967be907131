"""Who may hold which end of a session: the relay's credential rules (DESIGN.md rule 1).

Rule: a host end is taken with a session-initiation token (single use, minted for a
logged-in device after it proved its key) or, to come back, with its current routing
token; a viewer end only with the session's viewer-join token (from the URL fragment) or
its own current routing token. Nothing else holds a slot, so a connection without a
credential cannot squat one. Once attached, each end gets a routing token for its session
and role; it renews it in-band before it expires, and each renewal fences the previous
one. When a host registers a session, the session gets a new *generation*: join and
routing tokens of an earlier registration are dead with it (revoked with the session).

Check first, commit after: ``check_*`` verify without changing anything (the broker may
still refuse the slot: busy), ``commit_*`` record the new state and mint what the end is
given. Pure apart from its NonceBook and session table; time is a parameter.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tether.auth import proof as proofs
from tether.auth.keys import KeySet
from tether.auth.nonces import NonceBook
from tether.auth.tokens import LIFETIME, Claims, Purpose, Refusal, mint, new_nonce, verify
from tether.errors import CredentialRefused

HOST, VIEWER = "host", "viewer"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What an end is given once attached (sent as a ``credentials`` control message)."""

    routing: str
    expires: float
    claims: Claims
    join: str | None = None  # the host also gets the session's viewer-join token

    def to_json(self, now: float) -> dict[str, object]:
        data: dict[str, object] = {"type": "credentials", "routing": self.routing, "expires_in": self.expires - now}
        if self.join is not None:
            data["join"] = self.join
        return data


@dataclass
class Admission:
    """The relay's credential state: keys, single-use nonces, each session's generation."""

    keys: KeySet
    random_bytes: Callable[[int], bytes] = os.urandom
    lifetimes: dict[Purpose, float] = field(default_factory=lambda: dict(LIFETIME))
    nonces: NonceBook = field(default_factory=NonceBook)
    generations: dict[str, str] = field(default_factory=dict)  # session -> current registration
    current: dict[tuple[str, str], str] = field(default_factory=dict)  # (session, role) -> newest routing nonce

    # -- session initiation (HTTP, after the account store found the device) ----------

    def accept_proof(self, proof: proofs.Proof, public_key: Ed25519PublicKey, origins: set[str], now: float) -> None:
        """Check a device's possession proof for this relay and use it up (single use)."""
        if proof.origin not in origins:
            raise CredentialRefused(Refusal.BAD_PROOF, "made for another relay")
        proofs.check(proof, public_key, proof.origin, now)
        if not self.nonces.use(proof.nonce, proof.time + proofs.PROOF_WINDOW, now):
            raise CredentialRefused(Refusal.REPLAYED, "proof seen before")

    def initiate(
        self, proof: proofs.Proof, public_key: Ed25519PublicKey, origins: set[str], now: float
    ) -> tuple[str, float]:
        """A session-initiation token for a device that proved its key: (token, expires)."""
        self.accept_proof(proof, public_key, origins, now)
        token, claims = mint(self.keys, Purpose.INITIATE, proof.device, now, self.random_bytes,
                             lifetime=self.lifetimes[Purpose.INITIATE])  # fmt: skip
        return token, claims.expires

    # -- attaching -----------------------------------------------------------------------

    def check(self, role: str, token: str, session: str, now: float) -> Claims:
        """Verify the credential an end presents for ``session``; changes nothing."""
        if role == HOST:
            try:
                claims = verify(self.keys, token, Purpose.INITIATE, now)
            except CredentialRefused as first:
                if first.reason != Refusal.BAD_SIGNATURE:
                    raise
                return self._routing(token, session, HOST, now)
            if claims.nonce in self.nonces:
                raise CredentialRefused(Refusal.REPLAYED, "initiation token used before")
            return claims
        try:
            claims = verify(self.keys, token, Purpose.VIEWER_JOIN, now, session=session)
        except CredentialRefused as first:
            if first.reason != Refusal.BAD_SIGNATURE:
                raise
            return self._routing(token, session, VIEWER, now)
        if self.generations.get(session) != claims.generation:
            raise CredentialRefused(Refusal.REVOKED, "the session this link was made for is over")
        return claims

    def _routing(self, token: str, session: str, role: str, now: float) -> Claims:
        claims = verify(self.keys, token, Purpose.ROUTING, now, session=session, role=role)
        if self.generations.get(session) != claims.generation:
            raise CredentialRefused(Refusal.REVOKED, "the session is over")
        if self.current.get((session, role)) != claims.nonce:
            raise CredentialRefused(Refusal.FENCED, "a newer routing token replaced this one")
        return claims

    def commit(self, role: str, presented: Claims, session: str, now: float) -> Credentials:
        """The end holds its slot now: record it and mint its credentials."""
        join = None
        if presented.purpose == Purpose.INITIATE:
            if not self.nonces.use(presented.nonce, presented.expires, now):
                raise CredentialRefused(Refusal.REPLAYED, "initiation token used before")
            self.generations[session] = new_nonce(self.random_bytes)
            self.current.pop((session, VIEWER), None)
            join, _ = mint(self.keys, Purpose.VIEWER_JOIN, VIEWER, now, self.random_bytes, session=session,
                           role=VIEWER, generation=self.generations[session],
                           lifetime=self.lifetimes[Purpose.VIEWER_JOIN])  # fmt: skip
        subject = presented.subject
        credentials = self._route(session, role, subject, now)
        return Credentials(credentials.routing, credentials.expires, credentials.claims, join)

    def _route(self, session: str, role: str, subject: str, now: float) -> Credentials:
        token, claims = mint(self.keys, Purpose.ROUTING, subject, now, self.random_bytes, session=session, role=role,
                             generation=self.generations[session],
                             lifetime=self.lifetimes[Purpose.ROUTING])  # fmt: skip
        self.current[(session, role)] = claims.nonce  # fences every earlier routing token of this end
        return Credentials(token, claims.expires, claims)

    def renew(self, held: Claims, now: float) -> Credentials:
        """A fresh routing token for an end that still holds a valid one (in-band, no reconnect)."""
        if now >= held.expires:
            raise CredentialRefused(Refusal.EXPIRED)
        if self.current.get((held.session, held.role)) != held.nonce:
            raise CredentialRefused(Refusal.FENCED)
        if self.generations.get(held.session) != held.generation:
            raise CredentialRefused(Refusal.REVOKED)
        return self._route(held.session, held.role, held.subject, now)

    def end(self, session: str) -> None:
        """The session is over: every token made for it dies with its generation."""
        self.generations.pop(session, None)
        self.current.pop((session, HOST), None)
        self.current.pop((session, VIEWER), None)

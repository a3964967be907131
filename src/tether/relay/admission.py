"""Who may hold which end of a session: the relay's credential rules (DESIGN.md rule 1).

Rule: a host end is taken with a session-initiation token (single use, minted for a
logged-in device after it proved its key) or, to come back, with its current routing
token; a viewer end only with the session's viewer-join token (from the URL fragment) or
its own current routing token. Nothing else holds a slot, so a connection without a
credential cannot squat one. Once attached, each end gets a routing token for its session
and role; it renews it in-band before it expires, and each renewal fences the previous
one. When a host registers a session, the session gets a new *generation*: join and
routing tokens of an earlier registration are dead with it (revoked with the session).

Coming back (docs/protocol.md, "Reconnection"): when its connection was lost, a host
takes its session again with its routing token, or, once that expired, with a fresh
initiation token and that routing token beside it (``resume``: it may be expired by up to
``RESUME_GRACE``) naming the session it held, for the same device: the session keeps its
generation, so the viewer's tokens still work. The relay keeps nothing of a session whose
host is gone, and may have restarted: a token whose session this relay knows no
generation of is taken at its word (the relay's own signature), and its generation
becomes the session's again. An owned session id (auth/owner.py) is registered only by
the device it names, so a stranger's initiation token cannot take it meanwhile.

Check first, commit after: ``check_*`` verify without changing anything (the broker may
still refuse the slot: busy), ``commit_*`` record the new state and mint what the end is
given. Pure apart from its NonceBook and session table; time is a parameter.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tether.auth import owner
from tether.auth import proof as proofs
from tether.auth.keys import KeySet
from tether.auth.nonces import NonceBook
from tether.auth.tokens import LIFETIME, Claims, Purpose, Refusal, mint, new_nonce, verify
from tether.errors import CredentialRefused

HOST, VIEWER = "host", "viewer"
RESUME_GRACE = 86400.0  # seconds past its expiry a host's routing token still names the session it held


def coming_back(claims: Claims) -> bool:
    """Whether a host's credential is one to come back with: its routing token, or a fresh proof naming the session."""
    return claims.purpose == Purpose.ROUTING or (claims.purpose == Purpose.INITIATE and bool(claims.generation))


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

    def check(self, role: str, token: str, session: str, now: float, resume: str | None = None) -> Claims:
        """Verify the credential an end presents for ``session``; changes nothing.

        ``resume``: beside a host's initiation token, the routing token it held for
        ``session`` (see the module doc); the claims returned then carry its generation.
        """
        if role == HOST:
            try:
                claims = verify(self.keys, token, Purpose.INITIATE, now)
            except CredentialRefused as first:
                if first.reason != Refusal.BAD_SIGNATURE:
                    raise
                return self._routing(token, session, HOST, now)
            if claims.nonce in self.nonces:
                raise CredentialRefused(Refusal.REPLAYED, "initiation token used before")
            if not owner.may_register(claims.subject, session):
                raise CredentialRefused(Refusal.WRONG_SESSION, "this session id belongs to another device")
            if resume is not None:
                held = verify(self.keys, resume, Purpose.ROUTING, now, session=session, role=HOST, grace=RESUME_GRACE)
                if held.subject != claims.subject:
                    raise CredentialRefused(Refusal.WRONG_SESSION, "another device held this session")
                self._same_generation(session, held.generation)
                claims = dataclasses.replace(claims, generation=held.generation)
            return claims
        try:
            claims = verify(self.keys, token, Purpose.VIEWER_JOIN, now, session=session)
        except CredentialRefused as first:
            if first.reason != Refusal.BAD_SIGNATURE:
                raise
            return self._routing(token, session, VIEWER, now)
        self._same_generation(session, claims.generation)
        return claims

    def _same_generation(self, session: str, generation: str) -> None:
        """Refuse a token of an earlier registration; for a session this relay knows nothing of, take its word."""
        known = self.generations.get(session)
        if known is not None and known != generation:
            raise CredentialRefused(Refusal.REVOKED, "the session this token was made for is over")

    def _routing(self, token: str, session: str, role: str, now: float) -> Claims:
        # A viewer's routing token brings it back after an outage even once lapsed (it could
        # not renew meanwhile): the relay only guards the one seat; what a viewer may see is
        # the host's decision (its resume secret). A host proves its device afresh instead.
        grace = RESUME_GRACE if role == VIEWER else 0.0
        claims = verify(self.keys, token, Purpose.ROUTING, now, session=session, role=role, grace=grace)
        self._same_generation(session, claims.generation)
        current = self.current.get((session, role))
        if current is not None and current != claims.nonce:
            raise CredentialRefused(Refusal.FENCED, "a newer routing token replaced this one")
        return claims

    def commit(self, role: str, presented: Claims, session: str, now: float) -> Credentials:
        """The end holds its slot now: record it and mint its credentials."""
        if presented.purpose == Purpose.INITIATE:
            if not self.nonces.use(presented.nonce, presented.expires, now):
                raise CredentialRefused(Refusal.REPLAYED, "initiation token used before")
            if presented.generation:  # a host coming back (resume): the session goes on
                self.generations[session] = presented.generation
            else:
                self.generations[session] = new_nonce(self.random_bytes)
                self.current.pop((session, VIEWER), None)
        else:
            # A token of a session this relay had forgotten (its host was away, the relay restarted).
            self.generations.setdefault(session, presented.generation)
        subject = presented.subject
        credentials = self._route(session, role, subject, now)
        return dataclasses.replace(credentials, join=self._join(session, now) if role == HOST else None)

    def _join(self, session: str, now: float) -> str:
        """A viewer-join token for ``session``'s current generation: the host gets a fresh one with each
        credential, so the link it shows (the URL it prints when its pairing secret rotates) never carries
        a lapsed one, however long the session has run."""
        join, _ = mint(self.keys, Purpose.VIEWER_JOIN, VIEWER, now, self.random_bytes, session=session, role=VIEWER,
                       generation=self.generations[session], lifetime=self.lifetimes[Purpose.VIEWER_JOIN])  # fmt: skip
        return join

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
        credentials = self._route(held.session, held.role, held.subject, now)
        return dataclasses.replace(credentials, join=self._join(held.session, now) if held.role == HOST else None)

    def end(self, session: str) -> None:
        """The session is over: every token made for it dies with its generation."""
        self.generations.pop(session, None)
        self.current.pop((session, HOST), None)
        self.current.pop((session, VIEWER), None)

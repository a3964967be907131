"""The relay's admission rules: which credential takes which end of which session (injected clock)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tether.auth import proof as proofs
from tether.auth.keys import KeySet
from tether.auth.tokens import Purpose, Refusal, mint
from tether.errors import CredentialRefused
from tether.relay.admission import HOST, VIEWER, Admission, Credentials

NOW = 2_000_000.0
SID, OTHER = "A" * 22, "B" * 22
ORIGIN = "https://relay.example"


@pytest.fixture
def admission() -> Admission:
    return Admission(KeySet.generate(NOW))


def refused(reason: Refusal, call: object, *args: object) -> None:
    with pytest.raises(CredentialRefused) as caught:
        call(*args)  # type: ignore[operator]
    assert reason == caught.value.reason


def initiation(admission: Admission, now: float = NOW) -> str:
    device = Ed25519PrivateKey.generate()
    proof = proofs.sign(device, "dev-1", ORIGIN, now, os.urandom)
    token, _ = admission.initiate(proof, device.public_key(), {ORIGIN}, now)
    return token


def host(admission: Admission, session: str = SID) -> Credentials:
    token = initiation(admission)
    return admission.commit(HOST, admission.check(HOST, token, session, NOW), session, NOW)


def test_a_device_proof_gets_one_initiation_token(admission: Admission) -> None:
    """A proof is single use and bound to this relay's origin."""
    device = Ed25519PrivateKey.generate()
    proof = proofs.sign(device, "dev-1", ORIGIN, NOW, os.urandom)
    admission.initiate(proof, device.public_key(), {ORIGIN}, NOW)
    refused(Refusal.REPLAYED, admission.initiate, proof, device.public_key(), {ORIGIN}, NOW + 1)
    other = proofs.sign(device, "dev-1", "https://elsewhere", NOW, os.urandom)
    refused(Refusal.BAD_PROOF, admission.initiate, other, device.public_key(), {ORIGIN}, NOW)


def test_an_initiation_token_registers_one_session_once(admission: Admission) -> None:
    """Used once, the initiation token is refused the second time, for any session."""
    token = initiation(admission)
    admission.commit(HOST, admission.check(HOST, token, SID, NOW), SID, NOW)
    refused(Refusal.REPLAYED, admission.check, HOST, token, OTHER, NOW + 1)


def test_an_expired_initiation_token_is_refused(admission: Admission) -> None:
    """Past its ~2 minutes the initiation token is refused."""
    token = initiation(admission)
    refused(Refusal.EXPIRED, admission.check, HOST, token, SID, NOW + 120)


def test_the_viewer_joins_only_its_session_with_the_join_token(admission: Admission) -> None:
    """The join token admits a viewer to its session only; a routing token of the host does not."""
    given = host(admission)
    assert given.join is not None
    claims = admission.check(VIEWER, given.join, SID, NOW + 1)
    assert Purpose.VIEWER_JOIN == claims.purpose
    refused(Refusal.WRONG_SESSION, admission.check, VIEWER, given.join, OTHER, NOW + 1)
    refused(Refusal.WRONG_ROLE, admission.check, VIEWER, given.routing, SID, NOW + 1)
    refused(Refusal.EXPIRED, admission.check, VIEWER, given.join, SID, NOW + 600)


def test_a_join_token_dies_with_its_session(admission: Admission) -> None:
    """When the session is registered again, its join token is revoked.

    Once it ended the relay knows nothing of it: the token's own word is taken (no host
    holds the session, so the broker refuses the viewer 4404), as after a relay restart.
    """
    given = host(admission)
    assert given.join is not None
    admission.end(SID)
    assert SID == admission.check(VIEWER, given.join, SID, NOW + 1).session
    host(admission)
    refused(Refusal.REVOKED, admission.check, VIEWER, given.join, SID, NOW + 1)


def test_renewal_fences_the_previous_routing_token(admission: Admission) -> None:
    """After an in-band renewal the old routing token cannot bring an end back; the new one can."""
    given = host(admission)
    renewed = admission.renew(given.claims, NOW + 300)
    refused(Refusal.FENCED, admission.check, HOST, given.routing, SID, NOW + 301)
    assert SID == admission.check(HOST, renewed.routing, SID, NOW + 301).session
    refused(Refusal.FENCED, admission.renew, given.claims, NOW + 302)


def test_a_session_outlives_many_routing_lifetimes_by_renewing(admission: Admission) -> None:
    """Renewed before each expiry, an end keeps a valid routing token for hours."""
    held = host(admission)
    now = NOW
    for _ in range(20):
        now += 500
        held = admission.renew(held.claims, now)
    assert SID == admission.check(HOST, held.routing, SID, now + 1).session
    refused(Refusal.EXPIRED, admission.renew, held.claims, now + 600)


def test_a_token_for_another_purpose_takes_no_end(admission: Admission) -> None:
    """Tokens of the wrong class, or forged by another key, are refused at the door."""
    given = host(admission)
    foreign, _ = mint(KeySet.generate(NOW), Purpose.INITIATE, "dev-x", NOW, os.urandom)
    refused(Refusal.UNKNOWN_KEY, admission.check, HOST, foreign, OTHER, NOW)
    assert given.join is not None
    refused(Refusal.BAD_SIGNATURE, admission.check, HOST, given.join, SID, NOW)
    refused(Refusal.MALFORMED, admission.check, VIEWER, "not-a-token", SID, NOW)

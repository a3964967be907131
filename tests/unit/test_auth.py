"""Scoped short-lived credentials: every class refused when expired, replayed, misused or forged."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tether.auth import proof as proofs
from tether.auth.keys import KeySet
from tether.auth.nonces import NonceBook
from tether.auth.tokens import LIFETIME, Purpose, Refusal, mint, verify
from tether.errors import CredentialRefused

NOW = 1_000_000.0
SID = "AAAAAAAAAAAAAAAAAAAAAA"


def refused(reason: Refusal, call: object, *args: object, **kwargs: object) -> None:
    with pytest.raises(CredentialRefused) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert reason == caught.value.reason


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet.generate(NOW)


@pytest.mark.parametrize("purpose", list(Purpose))
def test_a_token_verifies_for_its_purpose_until_it_expires(keys: KeySet, purpose: Purpose) -> None:
    """Each class verifies within its lifetime and is refused from its expiry on (injected clock)."""
    token, claims = mint(keys, purpose, "dev-1", NOW, os.urandom, session=SID, role="host")
    assert claims == verify(keys, token, purpose, NOW + LIFETIME[purpose] - 1, session=SID, role="host")
    refused(Refusal.EXPIRED, verify, keys, token, purpose, NOW + LIFETIME[purpose])


@pytest.mark.parametrize("minted", list(Purpose))
@pytest.mark.parametrize("presented", list(Purpose))
def test_a_token_for_one_purpose_fails_every_other(keys: KeySet, minted: Purpose, presented: Purpose) -> None:
    """The purpose is the signed implicit assertion: presented for another purpose, the signature fails."""
    token, _ = mint(keys, minted, "dev-1", NOW, os.urandom, session=SID, role="host")
    if minted == presented:
        verify(keys, token, presented, NOW)
    else:
        refused(Refusal.BAD_SIGNATURE, verify, keys, token, presented, NOW)


def test_another_session_or_role_is_refused(keys: KeySet) -> None:
    """A routing token names one session and one role."""
    token, _ = mint(keys, Purpose.ROUTING, "dev-1", NOW, os.urandom, session=SID, role="host")
    refused(Refusal.WRONG_SESSION, verify, keys, token, Purpose.ROUTING, NOW, session="B" * 22, role="host")
    refused(Refusal.WRONG_ROLE, verify, keys, token, Purpose.ROUTING, NOW, session=SID, role="viewer")


def test_a_forged_or_altered_token_is_refused(keys: KeySet) -> None:
    """Signed by another key set, or with one byte changed, a token is refused; garbage is malformed."""
    other = KeySet.generate(NOW)
    foreign, _ = mint(other, Purpose.ROUTING, "dev-1", NOW, os.urandom)
    refused(Refusal.UNKNOWN_KEY, verify, keys, foreign, Purpose.ROUTING, NOW)
    token, _ = mint(keys, Purpose.ROUTING, "dev-1", NOW, os.urandom)
    version, kind, body, footer = token.split(".")
    altered = ".".join([version, kind, body[:10] + ("A" if body[10] != "A" else "B") + body[11:], footer])
    refused(Refusal.BAD_SIGNATURE, verify, keys, altered, Purpose.ROUTING, NOW)
    refused(Refusal.MALFORMED, verify, keys, "v4.public.nope", Purpose.ROUTING, NOW)
    refused(Refusal.MALFORMED, verify, keys, "Bearer x", Purpose.ROUTING, NOW)


def test_rotation_keeps_old_tokens_until_the_old_key_retires() -> None:
    """After a rotation the new key signs; the old one verifies until it retires, then its tokens fail."""
    keys = KeySet.generate(NOW)
    old, _ = mint(keys, Purpose.ROUTING, "dev-1", NOW, os.urandom, lifetime=10_000)
    keys.rotate(NOW + 1, retire_after=100)
    new, _ = mint(keys, Purpose.ROUTING, "dev-1", NOW + 2, os.urandom)
    verify(keys, old, Purpose.ROUTING, NOW + 50)
    verify(keys, new, Purpose.ROUTING, NOW + 50)
    refused(Refusal.UNKNOWN_KEY, verify, keys, old, Purpose.ROUTING, NOW + 101)
    shared = KeySet.from_json(keys.to_json())  # another relay process with the same key file
    verify(shared, new, Purpose.ROUTING, NOW + 50)


def test_a_token_from_the_future_is_refused(keys: KeySet) -> None:
    """A token issued well after the verifier's now is not yet valid."""
    token, _ = mint(keys, Purpose.ROUTING, "dev-1", NOW + 600, os.urandom)
    refused(Refusal.NOT_YET_VALID, verify, keys, token, Purpose.ROUTING, NOW)


def test_single_use_nonces_are_refused_the_second_time() -> None:
    """A nonce is accepted once while it matters, and forgotten after."""
    book = NonceBook()
    assert book.use("n1", until=NOW + 120, now=NOW)
    assert not book.use("n1", until=NOW + 120, now=NOW + 1)
    assert 1 == len(book)
    book.purge(NOW + 121)
    assert 0 == len(book)


def test_a_full_nonce_book_fails_closed() -> None:
    """Past its limit the book refuses new nonces rather than grow without bound."""
    book = NonceBook(limit=2)
    assert book.use("a", NOW + 10, NOW) and book.use("b", NOW + 10, NOW)
    assert not book.use("c", NOW + 10, NOW)


def test_possession_proof_checks_key_origin_and_time() -> None:
    """A device's proof verifies with its key for its relay, fresh; any other key, relay or time fails."""
    device = Ed25519PrivateKey.generate()
    proof = proofs.sign(device, "dev-1", "https://relay.example", NOW, os.urandom)
    proofs.check(proof, device.public_key(), "https://relay.example", NOW + 5)
    refused(Refusal.BAD_PROOF, proofs.check, proof, Ed25519PrivateKey.generate().public_key(),
            "https://relay.example", NOW)  # fmt: skip
    refused(Refusal.BAD_PROOF, proofs.check, proof, device.public_key(), "https://evil.example", NOW)
    refused(Refusal.EXPIRED, proofs.check, proof, device.public_key(), "https://relay.example",
            NOW + proofs.PROOF_WINDOW + 1)  # fmt: skip
    tampered = proofs.Proof.from_json({**proof.to_json(), "device": "dev-2"})
    refused(Refusal.BAD_PROOF, proofs.check, tampered, device.public_key(), "https://relay.example", NOW)
    refused(Refusal.MALFORMED, proofs.Proof.from_json, {"device": "x"})

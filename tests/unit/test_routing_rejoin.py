"""A host lost without ending: the viewer hears 4503, the relay keeps nothing, the host takes its session back."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tether.auth import owner
from tether.auth import proof as proofs
from tether.auth.keys import KeySet
from tether.auth.tokens import Refusal
from tether.errors import CredentialRefused
from tether.relay import routing
from tether.relay.admission import HOST, VIEWER, Admission, Credentials
from tether.relay.broker import MemoryBroker
from tether.relay.routing import Close, CloseCode, Dismiss, Event, Notify, Outcome, PeerState, Role, SessionState

NOW = 2_000_000.0
ORIGIN = "https://relay.example"
SID = "A" * 22


# The table


def test_a_lost_host_closes_its_viewer_host_away() -> None:
    """A host gone without a deliberate end frees the session too, but its viewer is closed 4503, not 4000."""
    expected = Outcome(SessionState.ABSENT, (Close(Role.VIEWER, CloseCode.HOST_AWAY),))
    assert expected == routing.leave(Role.HOST, SessionState.PAIRED, clean=False)
    assert Outcome(SessionState.ABSENT) == routing.leave(Role.HOST, SessionState.HOSTED, clean=False)
    assert "host away" == CloseCode.HOST_AWAY.reason


def test_a_deliberate_end_still_closes_the_viewer_4000() -> None:
    """A host that closes on purpose ends the session for its viewer at once."""
    expected = Outcome(SessionState.ABSENT, (Close(Role.VIEWER, CloseCode.SESSION_ENDED),))
    assert expected == routing.leave(Role.HOST, SessionState.PAIRED, clean=True)


def test_a_lost_viewer_is_a_viewer_that_left() -> None:
    """For a viewer, lost or gone on purpose is the same: the host hears `left`."""
    expected = Outcome(SessionState.HOSTED, (Notify(Role.HOST, Role.VIEWER, PeerState.LEFT),))
    assert expected == routing.leave(Role.VIEWER, SessionState.PAIRED, clean=False)


def test_the_table_has_a_lost_for_every_leave() -> None:
    """Every leave rule has its lost twin: no end falls through the table when its connection drops."""
    leaves = {(state, role) for state, role, event in routing.TRANSITIONS if event is Event.LEAVE}
    lost = {(state, role) for state, role, event in routing.TRANSITIONS if event is Event.LOST}
    assert leaves == lost


@pytest.mark.parametrize(("code", "deliberate"), [(1000, True), (4000, True), (1006, False), (1001, False),
                                                  (1011, False), (None, False)])  # fmt: skip
def test_only_1000_and_4000_are_deliberate(code: int | None, deliberate: bool) -> None:
    """A close frame 1000 or 4000 is an end on purpose; no close frame, or any other code, is a loss."""
    assert deliberate == routing.deliberate(code)


def test_a_host_coming_back_replaces_its_old_connection() -> None:
    """Coming back while the relay still holds its old (dead) connection: that one is dismissed 4410, its viewer
    told the host is away (4503) so it comes back to the new one; a host coming back to nothing just joins."""
    both = Outcome(
        SessionState.HOSTED,
        (Dismiss(Role.VIEWER, CloseCode.HOST_AWAY), Dismiss(Role.HOST, CloseCode.REPLACED, discard=True)),
    )
    assert both == routing.join(SID, Role.HOST, SessionState.PAIRED, returning=True)
    alone = Outcome(SessionState.HOSTED, (Dismiss(Role.HOST, CloseCode.REPLACED, discard=True),))
    assert alone == routing.join(SID, Role.HOST, SessionState.HOSTED, returning=True)
    assert Outcome(SessionState.HOSTED) == routing.join(SID, Role.HOST, SessionState.ABSENT, returning=True)
    assert (
        CloseCode.SESSION_BUSY == routing.join(SID, Role.HOST, SessionState.HOSTED).refusal
    )  # a plain join still is not


# The memory broker


async def drain(broker: MemoryBroker, clean: bool) -> list[object]:
    host = await broker.attach(SID, Role.HOST)
    viewer = await broker.attach(SID, Role.VIEWER)
    await broker.detach(host, clean)
    items = []
    while (item := await viewer.mailbox.get()) not in list(CloseCode):
        items.append(item)
    return [*items, item]


async def test_broker_lets_a_returning_host_replace_its_old_connection() -> None:
    """The old host's queue ends 4410, its viewer's 4503; the new host holds the session, a new viewer joins it."""
    broker = MemoryBroker()
    old = await broker.attach(SID, Role.HOST)
    viewer = await broker.attach(SID, Role.VIEWER)
    new = await broker.attach(SID, Role.HOST, returning=True)
    assert CloseCode.REPLACED == await old.mailbox.get()
    assert CloseCode.HOST_AWAY == [item async for item in _until_close(viewer)][-1]
    await broker.detach(old, clean=False)  # the old connection's late leave changes nothing
    assert 1 == await broker.session_count()
    again = await broker.attach(SID, Role.VIEWER)
    assert routing.peer_message(Role.VIEWER, PeerState.JOINED) == await new.mailbox.get()
    await broker.detach(new)
    assert CloseCode.SESSION_ENDED == [item async for item in _until_close(again)][-1]


async def _until_close(attachment: object) -> AsyncIterator[object]:
    mailbox = attachment.mailbox  # type: ignore[attr-defined]
    while (item := await mailbox.get()) not in list(CloseCode):
        yield item
    yield item


async def test_broker_closes_the_viewer_of_a_lost_host_4503_and_keeps_nothing() -> None:
    """Detached as lost, the host's viewer ends with 4503 and the session is gone (the relay keeps nothing)."""
    broker = MemoryBroker()
    assert CloseCode.HOST_AWAY == (await drain(broker, clean=False))[-1]
    assert 0 == await broker.session_count()
    assert CloseCode.SESSION_ENDED == (await drain(broker, clean=True))[-1]


# Credentials: coming back


def initiation(admission: Admission, device: str = "dev-1", now: float = NOW) -> str:
    key = Ed25519PrivateKey.generate()
    proof = proofs.sign(key, device, ORIGIN, now, os.urandom)
    token, _ = admission.initiate(proof, key.public_key(), {ORIGIN}, now)
    return token


def register(admission: Admission, session: str, device: str = "dev-1", now: float = NOW,
             resume: str | None = None) -> Credentials:  # fmt: skip
    claims = admission.check(HOST, initiation(admission, device, now), session, now, resume)
    return admission.commit(HOST, claims, session, now)


@pytest.fixture
def admission() -> Admission:
    return Admission(KeySet.generate(NOW))


def forget(admission: Admission, session: str) -> Admission:
    """The relay let go of the session (its host was lost), or restarted: only its keys remain."""
    admission.end(session)
    return Admission(admission.keys)


def test_a_host_comes_back_with_its_routing_token_after_the_relay_forgot(admission: Admission) -> None:
    """Nothing kept: the host's routing token is taken at its word, the session keeps its generation, the link works."""
    given = register(admission, SID)
    assert given.join is not None
    relay = forget(admission, SID)
    claims = relay.check(HOST, given.routing, SID, NOW + 60)
    back = relay.commit(HOST, claims, SID, NOW + 60)
    assert given.claims.generation == back.claims.generation
    assert SID == relay.check(VIEWER, given.join, SID, NOW + 61).session  # the URL still admits


def test_after_its_routing_token_lapsed_the_host_proves_its_device_and_names_the_session(admission: Admission) -> None:
    """A fresh initiation token with the lapsed routing token beside it keeps the session's generation."""
    given = register(admission, SID)
    relay = forget(admission, SID)
    later = NOW + 900  # past the routing token's 10 minutes
    with pytest.raises(CredentialRefused):
        relay.check(HOST, given.routing, SID, later)
    back = register(relay, SID, now=later, resume=given.routing)
    assert given.claims.generation == back.claims.generation


def test_a_viewer_comes_back_with_its_lapsed_routing_token_once_its_host_is_back(admission: Admission) -> None:
    """The viewer could not renew during the outage: its routing token still brings it to the same session."""
    given = register(admission, SID)
    assert given.join is not None
    viewer = admission.commit(VIEWER, admission.check(VIEWER, given.join, SID, NOW + 1), SID, NOW + 1)
    relay = forget(admission, SID)
    later = NOW + 900
    register(relay, SID, now=later, resume=given.routing)
    assert SID == relay.check(VIEWER, viewer.routing, SID, later).session


def test_a_stranger_cannot_take_an_owned_session_id(admission: Admission) -> None:
    """While no host holds it, another device's initiation token cannot register an owned session id; its owner can."""
    session = owner.owned_session_id("dev-1", os.urandom)
    given = register(admission, session, device="dev-1")
    relay = forget(admission, session)
    with pytest.raises(CredentialRefused) as caught:
        register(relay, session, device="dev-2")
    assert Refusal.WRONG_SESSION == caught.value.reason
    with pytest.raises(CredentialRefused) as caught:
        register(relay, session, device="dev-2", resume=given.routing)
    assert Refusal.WRONG_SESSION == caught.value.reason
    assert given.claims.generation == register(relay, session, device="dev-1", resume=given.routing).claims.generation


def test_a_stranger_cannot_resume_a_session_with_a_routing_token_of_another_device(admission: Admission) -> None:
    """The routing token beside an initiation token must be the same device's: a leaked one does not carry a session."""
    given = register(admission, SID, device="dev-1")
    relay = forget(admission, SID)
    with pytest.raises(CredentialRefused) as caught:
        register(relay, SID, device="dev-2", resume=given.routing)
    assert Refusal.WRONG_SESSION == caught.value.reason


def test_a_newer_registration_still_revokes_older_tokens(admission: Admission) -> None:
    """While the relay knows the session's generation, tokens of another one are refused, lapsed or not."""
    given = register(admission, SID)
    admission.end(SID)
    register(admission, SID)  # registered afresh (no resume): a new generation
    with pytest.raises(CredentialRefused) as caught:
        admission.check(HOST, given.routing, SID, NOW + 1)
    assert Refusal.REVOKED == caught.value.reason


def test_owned_ids_name_their_owner() -> None:
    """An owned id is 43 characters and only its own device may register it; an id of the old form is anyone's."""
    session = owner.owned_session_id("dev-1", os.urandom)
    mine, theirs = owner.may_register("dev-1", session), owner.may_register("dev-2", session)
    assert (43, True, True, False) == (len(session), routing.valid_session_id(session), mine, theirs)
    assert owner.may_register("dev-2", SID)

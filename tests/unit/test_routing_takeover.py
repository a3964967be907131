"""Taking over a session's one viewer seat, and the host dropping a viewer it refused: the routing
table's rules (relay/routing.py) and the memory broker carrying them out, without sockets."""

from __future__ import annotations

import json

import pytest

from tether.relay import routing
from tether.relay.broker import Mailbox, MemoryBroker
from tether.relay.routing import CloseCode, Dismiss, Event, Notify, Outcome, PeerState, Role, SessionState

SID = "AAAAAAAAAAAAAAAAAAAAAA"
_H, _V = Role.HOST, Role.VIEWER


def test_a_take_over_replaces_the_viewer_in_place_and_the_host_hears_why() -> None:
    """The viewer in place is closed 4410 (its queue dropped), the host hears `left` (replaced) then `joined`."""
    expected = Outcome(
        SessionState.PAIRED,
        (
            Dismiss(_V, CloseCode.REPLACED, discard=True),
            Notify(_H, _V, PeerState.LEFT, "replaced"),
            Notify(_H, _V, PeerState.JOINED),
            Notify(_V, _H, PeerState.JOINED),
        ),
    )
    assert expected == routing.join(SID, _V, SessionState.PAIRED, take_over=True)


def test_a_take_over_of_a_free_seat_is_an_ordinary_join() -> None:
    """Nobody to replace (the other device left meanwhile): the newcomer joins as any viewer."""
    assert routing.join(SID, _V, SessionState.HOSTED) == routing.join(SID, _V, SessionState.HOSTED, take_over=True)
    assert CloseCode.UNKNOWN_SESSION == routing.join(SID, _V, SessionState.ABSENT, take_over=True).refusal


@pytest.mark.parametrize("state", [SessionState.HOSTED, SessionState.PAIRED])
def test_a_host_cannot_take_over(state: SessionState) -> None:
    """Only a viewer may ask: a second host asking to take over is still busy."""
    assert CloseCode.SESSION_BUSY == routing.join(SID, _H, state, take_over=True).refusal


def test_every_viewer_take_over_has_a_rule() -> None:
    """No take-over falls through the table."""
    assert set(SessionState) == {s for s, role, event in routing.TRANSITIONS if (role, event) == (_V, Event.TAKE_OVER)}


def test_the_host_drops_its_viewer_and_hears_it_left() -> None:
    """A viewer the host refused is closed 4403 after what the host sent it; the seat is free."""
    expected = Outcome(SessionState.HOSTED, (Dismiss(_V, CloseCode.REFUSED_BY_HOST), Notify(_H, _V, PeerState.LEFT)))
    assert expected == routing.drop(_H, SessionState.PAIRED)


@pytest.mark.parametrize(
    ("role", "state"), [(_H, SessionState.HOSTED), (_V, SessionState.PAIRED), (_H, SessionState.ABSENT)]
)
def test_a_drop_with_no_viewer_or_from_a_viewer_changes_nothing(role: Role, state: SessionState) -> None:
    """Dropping a viewer that already left, or a viewer asking to drop its host, does nothing."""
    assert Outcome(state) == routing.drop(role, state)


@pytest.mark.parametrize(
    ("text", "expected"),
    [('{"type":"drop","role":"viewer"}', True), ('{"type": "drop", "role": "viewer"}', True),
     ('{"type":"drop","role":"host"}', False), ('{"type":"drop"}', False), ("drop", False), (None, False),
     ('{"type":"drop","role":"viewer"}' + " " * 300, False)],
)  # fmt: skip
def test_the_drop_request_is_exactly_the_documented_message(text: str | None, expected: bool) -> None:
    """Only `{"type":"drop","role":"viewer"}` (any JSON spacing, short) is a drop request."""
    assert expected == routing.is_drop_request(text)


def test_the_replaced_left_message_says_why() -> None:
    """The host's `left` for a replaced viewer carries `reason`; an ordinary one does not."""
    assert {"type": "peer", "role": "viewer", "state": "left", "reason": "replaced"} == json.loads(
        Notify(_H, _V, PeerState.LEFT, "replaced").message()
    )
    assert "reason" not in json.loads(Notify(_H, _V, PeerState.LEFT).message())


async def drain(mailbox: Mailbox) -> list[object]:
    items: list[object] = [await mailbox.get() for _ in range(len(mailbox))]
    if mailbox.closing is not None:
        items.append(mailbox.closing)
    return items


def peer(role: Role, state: PeerState, reason: str | None = None) -> str:
    return routing.peer_message(role, state, reason)


async def test_memory_broker_take_over() -> None:
    """The old viewer's queue ends with 4410 at once; the host hears left (replaced) then joined, then the
    newcomer's frames; a frame of the old viewer sent after the take-over reaches nobody."""
    broker = MemoryBroker()
    host = await broker.attach(SID, _H)
    old = await broker.attach(SID, _V)
    await broker.forward(host, b"for the old viewer")
    new = await broker.attach(SID, _V, take_over=True)
    await broker.forward(old, b"late from the old one")
    await broker.forward(new, b"from the new one")
    await broker.detach(old)  # its own late detach changes nothing
    assert [CloseCode.REPLACED] == await drain(old.mailbox)
    assert [peer(_V, PeerState.JOINED), peer(_V, PeerState.LEFT, "replaced"), peer(_V, PeerState.JOINED),
            b"from the new one"] == await drain(host.mailbox)  # fmt: skip
    assert [peer(_H, PeerState.JOINED)] == await drain(new.mailbox)
    await broker.forward(host, b"for the new one")
    assert [b"for the new one"] == await drain(new.mailbox)


async def test_memory_broker_drop() -> None:
    """The host's drop closes its viewer 4403 after what the host sent it, frees the seat, and a next viewer joins."""
    broker = MemoryBroker()
    host = await broker.attach(SID, _H)
    refused = await broker.attach(SID, _V)
    await broker.forward(host, b"why you were refused")
    await broker.drop(host)
    await broker.drop(host)  # a second drop: nobody there, nothing happens
    assert [peer(_H, PeerState.JOINED), b"why you were refused", CloseCode.REFUSED_BY_HOST] == await drain(
        refused.mailbox
    )
    assert [peer(_V, PeerState.JOINED), peer(_V, PeerState.LEFT)] == await drain(host.mailbox)
    await broker.attach(SID, _V)  # the seat is free
    await broker.drop(refused)  # a viewer cannot drop anyone (and this one is gone)
    assert [peer(_V, PeerState.JOINED)] == await drain(host.mailbox)

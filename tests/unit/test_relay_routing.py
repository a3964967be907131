"""The relay's routing table, counters and memory broker, without sockets."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json

import pytest

from tether.errors import BrokerUnavailable, Refused, RelayBindFailed, TetherError, UserError
from tether.protocol.channel import FRAGMENT_SIZE
from tether.protocol.frames import HEADER_SIZE, MAX_FRAME_BYTES
from tether.relay import app, routing, server
from tether.relay.broker import Mailbox, MemoryBroker, QueueLimits, create_broker
from tether.relay.config import RelayConfig
from tether.relay.routing import (
    Close,
    CloseCode,
    Counters,
    Drop,
    Event,
    Notify,
    Outcome,
    PeerState,
    Role,
    SessionState,
)

SID = "AAAAAAAAAAAAAAAAAAAAAA"  # 22 characters, like a real 16-byte id
OTHER = "BBBBBBBBBBBBBBBBBBBBBB"


# Session ids


@pytest.mark.parametrize("session_id", [SID, "a" * 16, "Z" * 64, "abc-DEF_123-xyz_"])
def test_valid_session_ids(session_id: str) -> None:
    """16 to 64 characters of the base64url alphabet are a session id."""
    assert True is routing.valid_session_id(session_id)


@pytest.mark.parametrize(
    "session_id", ["", "a" * 15, "a" * 65, "a" * 16 + "\n", "a" * 15 + "=", "a" * 15 + "é", "../" * 6]
)
def test_invalid_session_ids(session_id: str) -> None:
    """Anything else, a trailing newline or padding included, is not."""
    assert False is routing.valid_session_id(session_id)


# Close codes and drop reasons


def test_close_codes_and_reasons_match_the_protocol() -> None:
    """The close codes and reasons are those of docs/protocol.md section 1."""
    expected = {
        1001: "relay shutting down",
        1009: "frame too large",
        1011: "relay error",
        4000: "session ended",
        4400: "bad session id",
        4404: "unknown session",
        4408: "too slow",
        4409: "session busy",
        4410: "replaced",
        4403: "refused by the host",
        4401: "unauthorized",
        4429: "too many sessions",
        4503: "host away",
    }
    assert expected == {int(code): code.reason for code in CloseCode}


def test_every_refusal_has_a_drop_reason() -> None:
    """Each close code that refuses a join is counted under its own drop reason."""
    # Refused before the table is asked: a malformed id, no credential, an address at its limit.
    before = {CloseCode.BAD_SESSION_ID, CloseCode.UNAUTHORIZED, CloseCode.TOO_MANY_SESSIONS}
    refusals = {o.refusal for o in routing.TRANSITIONS.values() if o.refusal is not None} | before
    assert refusals == set(routing.REFUSALS)


# The state table


def test_session_state_of_present_ends() -> None:
    """The state follows from which ends are attached; a viewer alone means no session."""
    cases = [set(), {Role.HOST}, {Role.HOST, Role.VIEWER}, {Role.VIEWER}]
    expected = [SessionState.ABSENT, SessionState.HOSTED, SessionState.PAIRED, SessionState.ABSENT]
    assert expected == [SessionState.of(present) for present in cases]


def test_host_creates_a_session() -> None:
    """A host joining an absent session hosts it, with nothing to tell anyone."""
    assert Outcome(SessionState.HOSTED) == routing.join(SID, Role.HOST, SessionState.ABSENT)


@pytest.mark.parametrize("state", [SessionState.HOSTED, SessionState.PAIRED])
def test_second_host_is_busy(state: SessionState) -> None:
    """A second host for a live session is refused 4409 and changes nothing."""
    assert Outcome(state, refusal=CloseCode.SESSION_BUSY) == routing.join(SID, Role.HOST, state)


def test_viewer_without_host_is_unknown() -> None:
    """A viewer for a session no host holds is refused 4404."""
    assert CloseCode.UNKNOWN_SESSION == routing.join(SID, Role.VIEWER, SessionState.ABSENT).refusal


def test_second_viewer_is_busy() -> None:
    """One controlling viewer per session: the second is refused 4409."""
    assert CloseCode.SESSION_BUSY == routing.join(SID, Role.VIEWER, SessionState.PAIRED).refusal


def test_viewer_join_tells_host_first_then_viewer() -> None:
    """A viewer joining pairs the session; the host hears `joined` first, then the viewer."""
    expected = Outcome(
        SessionState.PAIRED,
        (Notify(Role.HOST, Role.VIEWER, PeerState.JOINED), Notify(Role.VIEWER, Role.HOST, PeerState.JOINED)),
    )
    assert expected == routing.join(SID, Role.VIEWER, SessionState.HOSTED)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("state", list(SessionState))
def test_bad_session_id_is_refused_whatever_the_state(role: Role, state: SessionState) -> None:
    """A malformed id is refused 4400 before anything else is looked at."""
    assert Outcome(state, refusal=CloseCode.BAD_SESSION_ID) == routing.join("short", role, state)


def test_host_leaving_alone_ends_the_session() -> None:
    """A host leaving with no viewer leaves nothing behind."""
    assert Outcome(SessionState.ABSENT) == routing.leave(Role.HOST, SessionState.HOSTED)


def test_host_leaving_closes_its_viewer_with_session_ended() -> None:
    """A host leaving a paired session closes the viewer 4000 and the session is gone."""
    expected = Outcome(SessionState.ABSENT, (Close(Role.VIEWER, CloseCode.SESSION_ENDED),))
    assert expected == routing.leave(Role.HOST, SessionState.PAIRED)


def test_viewer_leaving_tells_the_host() -> None:
    """A viewer leaving frees the seat and the host hears `left`."""
    expected = Outcome(SessionState.HOSTED, (Notify(Role.HOST, Role.VIEWER, PeerState.LEFT),))
    assert expected == routing.leave(Role.VIEWER, SessionState.PAIRED)


@pytest.mark.parametrize(
    ("role", "state"),
    [(Role.HOST, SessionState.ABSENT), (Role.VIEWER, SessionState.ABSENT), (Role.VIEWER, SessionState.HOSTED)],
)
def test_leave_of_an_absent_end_changes_nothing(role: Role, state: SessionState) -> None:
    """The late leave of an end that is already gone is a no-op."""
    assert Outcome(state) == routing.leave(role, state)


def test_table_covers_every_join() -> None:
    """Every (state, role) has a join rule: no join falls through the table."""
    joins = {(state, role) for state, role, event in routing.TRANSITIONS if event is Event.JOIN}
    expected = {(state, role) for state in SessionState for role in Role}
    assert expected == joins


def test_frames_go_to_the_peer_only_when_paired() -> None:
    """A frame goes to the other end of a paired session, else is dropped as no_peer."""
    expected = [Role.VIEWER, Role.HOST, Drop.NO_PEER]
    actual = [
        routing.destination(Role.HOST, SessionState.PAIRED),
        routing.destination(Role.VIEWER, SessionState.PAIRED),
        routing.destination(Role.HOST, SessionState.HOSTED),
    ]
    assert expected == actual


# Control messages and counters


def test_control_messages_are_the_documented_json() -> None:
    """`peer` and `error` control messages carry exactly the documented fields."""
    assert {"type": "peer", "role": "viewer", "state": "left"} == json.loads(
        routing.peer_message(Role.VIEWER, PeerState.LEFT)
    )
    assert {"type": "error", "reason": "malformed", "detail": "no"} == json.loads(
        routing.error_message(Drop.MALFORMED, "no")
    )


def test_counters_list_every_reason() -> None:
    """The snapshot shows every drop reason, zero included, with its count."""
    counters = Counters()
    counters.count(Drop.MALFORMED)
    counters.count(Drop.MALFORMED)
    counters.count(Drop.OVERSIZED, 3)
    expected = {str(reason): 0 for reason in Drop} | {"malformed": 2, "oversized": 3}
    assert expected == counters.snapshot()


# Mailbox


async def test_mailbox_is_bounded_by_bytes_and_count() -> None:
    """A frame fits while both bounds hold; an empty mailbox takes any frame."""
    mailbox = Mailbox(QueueLimits(max_bytes=10, max_frames=2, slow_timeout=1))
    assert True is mailbox.has_room(100)
    mailbox.push(b"12345678")
    assert (True, False) == (mailbox.has_room(2), mailbox.has_room(3))
    mailbox.push(b"1")
    assert False is mailbox.has_room(1)


async def test_mailbox_full_for_too_long_reports_no_room() -> None:
    """wait_for_room gives up after slow_timeout on a mailbox nobody drains."""
    mailbox = Mailbox(QueueLimits(max_bytes=4, max_frames=8, slow_timeout=0.01))
    mailbox.push(b"1234")
    assert False is await mailbox.wait_for_room(1)


async def test_mailbox_close_comes_after_what_is_queued_unless_discarded() -> None:
    """A close is read after the queued items; with discard it is read at once."""
    kept, discarded = Mailbox(QueueLimits()), Mailbox(QueueLimits())
    for mailbox in (kept, discarded):
        mailbox.push(b"frame")
        mailbox.push_control("text")
    kept.close(CloseCode.SESSION_ENDED)
    discarded.close(CloseCode.TOO_SLOW, discard=True)
    assert [b"frame", "text", CloseCode.SESSION_ENDED] == [await kept.get() for _ in range(3)]
    assert [CloseCode.TOO_SLOW, 0] == [await discarded.get(), discarded.queued_bytes]


# Memory broker (no sockets: the endpoints' side is played by reading the mailboxes)


async def drain(mailbox: Mailbox) -> list[object]:
    """Everything queued in a mailbox right now, the close code last if it is closed."""
    items: list[object] = [await mailbox.get() for _ in range(len(mailbox))]
    if mailbox.closing is not None:
        items.append(mailbox.closing)
    return items


async def test_broker_pairs_and_forwards_after_joined() -> None:
    """The host's mailbox holds `joined` before the viewer's first frame, which follows unchanged."""
    broker = MemoryBroker()
    host = await broker.attach(SID, Role.HOST)
    viewer = await broker.attach(SID, Role.VIEWER)
    await broker.forward(viewer, b"\x01\x00hello")
    joined = routing.peer_message(Role.VIEWER, PeerState.JOINED)
    assert [joined, b"\x01\x00hello"] == await drain(host.mailbox)
    assert [routing.peer_message(Role.HOST, PeerState.JOINED)] == await drain(viewer.mailbox)


async def test_broker_refusals_carry_code_and_drop_reason() -> None:
    """attach raises Refused with the close code and the reason to count."""
    broker = MemoryBroker()
    await broker.attach(SID, Role.HOST)
    refusals = []
    for session_id, role in [(SID, Role.HOST), (OTHER, Role.VIEWER), ("bad", Role.HOST)]:
        with pytest.raises(Refused) as caught:
            await broker.attach(session_id, role)
        refusals.append((caught.value.code, caught.value.drop))
    expected = [
        (CloseCode.SESSION_BUSY, Drop.SESSION_BUSY),
        (CloseCode.UNKNOWN_SESSION, Drop.UNKNOWN_SESSION),
        (CloseCode.BAD_SESSION_ID, Drop.BAD_SESSION_ID),
    ]
    assert expected == refusals


async def test_broker_host_leave_ends_session_and_closes_viewer() -> None:
    """When the host detaches, the viewer's mailbox ends with 4000 and no session is left."""
    broker = MemoryBroker()
    host = await broker.attach(SID, Role.HOST)
    viewer = await broker.attach(SID, Role.VIEWER)
    await broker.forward(host, b"last words")
    await broker.detach(host)
    assert [routing.peer_message(Role.HOST, PeerState.JOINED), b"last words", CloseCode.SESSION_ENDED] == await drain(
        viewer.mailbox
    )
    assert 0 == await broker.session_count()
    await broker.detach(viewer)  # the viewer's own late detach changes nothing
    assert 0 == await broker.session_count()


async def test_broker_counts_frames_without_peer() -> None:
    """A host frame with no viewer attached is dropped as no_peer."""
    broker = MemoryBroker()
    host = await broker.attach(SID, Role.HOST)
    await broker.forward(host, b"nobody")
    assert 1 == broker.counters[Drop.NO_PEER]


async def test_broker_evicts_a_viewer_that_does_not_drain() -> None:
    """A full viewer queue for slow_timeout closes the viewer 4408 first; the host hears `left`."""
    broker = MemoryBroker(limits=QueueLimits(max_bytes=1000, max_frames=2, slow_timeout=0.01))
    host = await broker.attach(SID, Role.HOST)
    viewer = await broker.attach(SID, Role.VIEWER)  # its queue holds `joined`
    await broker.forward(host, b"fills the queue")
    await broker.forward(host, b"waits, then evicts")
    assert [CloseCode.TOO_SLOW] == await drain(viewer.mailbox)
    assert routing.peer_message(Role.VIEWER, PeerState.LEFT) == (await drain(host.mailbox))[-1]
    assert (1, 1) == (broker.counters[Drop.TOO_SLOW], await broker.session_count())


async def test_broker_drops_a_frame_from_a_viewer_that_left() -> None:
    """A viewer's frame still waiting when it left never reaches the host after the next `joined`."""
    broker = MemoryBroker(limits=QueueLimits(max_bytes=1000, max_frames=2, slow_timeout=5))
    host = await broker.attach(SID, Role.HOST)
    first = await broker.attach(SID, Role.VIEWER)
    host.mailbox.push(b"full")  # with `joined`, the host's queue is full: the viewer's frame waits
    waiting = asyncio.create_task(broker.forward(first, b"old"))
    await asyncio.sleep(0)
    await broker.detach(first)
    second = await broker.attach(SID, Role.VIEWER)
    received: list[object] = [await host.mailbox.get() for _ in range(3)]  # room again: the waiting forward wakes
    await waiting
    await broker.forward(second, b"new")
    received += await drain(host.mailbox)
    expected = [
        routing.peer_message(Role.VIEWER, PeerState.JOINED),
        b"full",
        routing.peer_message(Role.VIEWER, PeerState.LEFT),
        routing.peer_message(Role.VIEWER, PeerState.JOINED),
        b"new",
    ]
    assert expected == received


async def test_broker_close_all_closes_every_end() -> None:
    """close_all ends every mailbox with the code and forgets every session."""
    broker = MemoryBroker()
    host = await broker.attach(SID, Role.HOST)
    other = await broker.attach(OTHER, Role.HOST)
    await broker.close_all(CloseCode.GOING_AWAY)
    assert [CloseCode.GOING_AWAY, CloseCode.GOING_AWAY, 0] == [
        host.mailbox.closing,
        other.mailbox.closing,
        await broker.session_count(),
    ]


def test_brokers_by_name() -> None:
    """`memory` is a MemoryBroker, `redis://` a RedisBroker (it connects when started); others fail with advice."""
    from tether.relay.redis_broker import RedisBroker

    assert isinstance(create_broker("memory"), MemoryBroker)
    assert isinstance(create_broker("redis://localhost:6379/0"), RedisBroker)
    for url in ("nats://localhost:4222", "postgres://x"):
        with pytest.raises(BrokerUnavailable) as caught:
            create_broker(url)
        assert "--broker memory" in caught.value.advice()


def test_relay_errors_belong_to_the_tether_tree() -> None:
    """Refused is a TetherError; a bad broker or a taken port is a UserError the CLI prints with advice."""
    assert (True, True, True) == (
        issubclass(Refused, TetherError),
        issubclass(BrokerUnavailable, UserError),
        issubclass(RelayBindFailed, UserError),
    )


def test_one_maximum_frame_size() -> None:
    """The relay's default frame limit is the protocol's MAX_FRAME_BYTES, and a Channel's largest frame fits in it."""
    uvicorn_limit = server.uvicorn_config(app.create_app(RelayConfig()), RelayConfig(), logs=False).ws_max_size
    assert (MAX_FRAME_BYTES, MAX_FRAME_BYTES, True) == (
        RelayConfig().max_frame_bytes,
        uvicorn_limit,
        FRAGMENT_SIZE + HEADER_SIZE <= MAX_FRAME_BYTES,
    )


def test_the_relay_app_does_not_import_its_server() -> None:
    """app.py takes its RelayConfig from config.py, so app and server import no cycle (not even for types)."""
    imported = {node.module for node in ast.walk(ast.parse(inspect.getsource(app))) if isinstance(node, ast.ImportFrom)}
    assert (True, False) == ("tether.relay.config" in imported, "tether.relay.server" in imported)


def test_relay_config_is_still_importable_from_the_server() -> None:
    """Host code imports RelayConfig from tether.relay.server: the same class as in config.py."""
    assert RelayConfig is server.RelayConfig

"""Take-over and the host's drop across relay processes: two RedisBrokers (two nodes) sharing a real
redis-server, the ends of one session spread over both (relay/redis_broker.py carries out the same
routing table as the memory broker: tests/unit/test_routing_takeover.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.conftest import UNIT
from tests.support.redis_server import redis_server
from tether.relay.broker import Mailbox
from tether.relay.redis_broker import RedisBroker
from tether.relay.routing import CloseCode, PeerState, Role, peer_message

SID = "CCCCCCCCCCCCCCCCCCCCCC"


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[RedisBroker, RedisBroker]]:
    with redis_server() as url:
        first, second = RedisBroker(url), RedisBroker(url)
        await first.start()
        await second.start()
        try:
            yield first, second
        finally:
            for broker in (first, second):
                await broker.close_all(CloseCode.GOING_AWAY)
                await broker.redis.connection_pool.disconnect()  # a pool handed in is not closed with its client


async def items(mailbox: Mailbox, n: int) -> list[object]:
    """The next ``n`` items of a mailbox, waiting for each (they cross Redis)."""
    async with asyncio.timeout(5 * UNIT):
        return [await mailbox.get() for _ in range(n)]


async def test_take_over_and_drop_across_two_relays(nodes: tuple[RedisBroker, RedisBroker]) -> None:
    """Host on one relay, the viewer in place on the other: a take-over closes it 4410 there, the host hears
    left (replaced) then joined, the newcomer's frames follow; the host's drop closes the newcomer 4403."""
    a, b = nodes
    host = await a.attach(SID, Role.HOST)
    old = await b.attach(SID, Role.VIEWER)
    assert [peer_message(Role.VIEWER, PeerState.JOINED)] == await items(host.mailbox, 1)
    new = await a.attach(SID, Role.VIEWER, take_over=True)
    await a.forward(new, b"from the new one")
    assert [peer_message(Role.HOST, PeerState.JOINED), CloseCode.REPLACED] == await items(old.mailbox, 2)
    expected = [peer_message(Role.VIEWER, PeerState.LEFT, "replaced"), peer_message(Role.VIEWER, PeerState.JOINED),
                b"from the new one"]  # fmt: skip
    assert expected == await items(host.mailbox, 3)
    await b.detach(old)  # the replaced end's own leave changes nothing
    await a.forward(host, b"why you were refused")
    await a.drop(host)
    assert [peer_message(Role.HOST, PeerState.JOINED), b"why you were refused", CloseCode.REFUSED_BY_HOST] == (
        await items(new.mailbox, 3))  # fmt: skip
    assert [peer_message(Role.VIEWER, PeerState.LEFT)] == await items(host.mailbox, 1)
    third = await b.attach(SID, Role.VIEWER)  # the seat is free again
    assert [peer_message(Role.HOST, PeerState.JOINED)] == await items(third.mailbox, 1)

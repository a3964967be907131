"""Frames keep their order across the relay's paths: written out at once, queued, or waiting for room."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import UNIT
from tests.integration.test_relay import connect, control, new_id, pair
from tether.relay.app import relay_state
from tether.relay.broker import Attachment, Item, Mailbox, MemoryBroker, QueueLimits
from tether.relay.server import EmbeddedRelay, RelayConfig
from tether.relay.websocket import FastPath, RelayWebSocketProtocol

FRAME = 4096
QUEUE = QueueLimits(max_bytes=8 * FRAME, max_frames=8)
FRAMES = 3000


class CountingBroker(MemoryBroker):
    """The memory broker, counting which way frames went: at once (forward_now) or waiting (forward)."""

    def __init__(self) -> None:
        super().__init__(limits=QUEUE)
        self.at_once = self.waited = 0
        self.full = asyncio.Event()  # a frame had to wait: its reader's socket and queue are full

    def forward_now(self, attachment: Attachment, frame: bytes) -> bool:
        taken = super().forward_now(attachment, frame)
        self.at_once += taken
        return taken

    async def forward(self, attachment: Attachment, frame: bytes) -> None:
        self.waited += 1
        self.full.set()
        await super().forward(attachment, frame)


async def test_frames_arrive_in_order_while_the_reader_lags_then_catches_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A viewer that reads nothing at first (its socket fills, its queue, the host waits) gets all frames in order.

    What its queue held goes out through the direct path as soon as its socket takes
    more, not one ASGI ``send`` (a task switch) per frame.
    """
    queued, sent_by_asgi = [0], [0]
    original_take, original_send = Mailbox.take, RelayWebSocketProtocol.send

    def counting_take(mailbox: Mailbox) -> Item | None:
        item = original_take(mailbox)
        queued[0] += isinstance(item, bytes)
        return item

    async def counting_send(protocol: RelayWebSocketProtocol, message: Any) -> None:
        sent_by_asgi[0] += message.get("bytes") is not None
        await original_send(protocol, message)

    monkeypatch.setattr(Mailbox, "take", counting_take)
    monkeypatch.setattr(RelayWebSocketProtocol, "send", counting_send)
    broker = CountingBroker()
    async with EmbeddedRelay(RelayConfig(port=0, max_frame_bytes=2 * FRAME), broker=broker) as relay:
        session = new_id()
        host = await connect(relay, "host", session)
        viewer = await connect(relay, "viewer", session, max_queue=2)
        assert "joined" == (await control(viewer))["state"]
        assert "joined" == (await control(host))["state"]

        async def send() -> None:
            for number in range(FRAMES):
                await host.send(number.to_bytes(4, "big") * (FRAME // 4))

        async def read() -> list[int]:
            await broker.full.wait()
            received = []
            for _ in range(FRAMES):
                frame = await viewer.recv()
                assert isinstance(frame, bytes) and FRAME == len(frame)
                received.append(int.from_bytes(frame[:4], "big"))
            return received

        async with asyncio.timeout(20 * UNIT):
            _, received = await asyncio.gather(send(), read())
        assert list(range(FRAMES)) == received
        # Every path was taken: written at once, queued (the budget saw bytes), and waiting for room.
        assert (True, True, True) == (broker.at_once > 0, broker.budget.peak > 0, broker.waited > 0)
        assert FRAMES == broker.at_once + broker.waited == relay_state(relay.app).metrics.frames
        # One ASGI send each time the socket was full, the rest of the queue written directly.
        assert 0 < sent_by_asgi[0] < queued[0] / 2
        await host.close()


async def test_an_attached_idle_connection_keeps_nothing_of_its_handshake(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once attached, a connection's scope holds its type and path only, and its credential lapse no timer of its own.

    Memory per idle session (issue 13): headers, addresses, path parameters and a timeout
    per connection were 2 KB of each session.
    """
    installed: list[RelayWebSocketProtocol] = []
    original_install = FastPath.install

    def recording_install(fast: FastPath, receiver: Any) -> None:
        original_install(fast, receiver)
        installed.append(fast._protocol)

    monkeypatch.setattr(FastPath, "install", recording_install)
    async with EmbeddedRelay(RelayConfig(port=0)) as relay:
        _, host, viewer = await pair(relay)
        assert 2 == len(installed)
        for protocol in installed:
            assert ({"type", "path"}, None, None) == (set(protocol.scope), protocol.client, protocol.server)
        assert 2 == len(relay_state(relay.app).deadlines)
        await host.send(b"still forwarded")
        assert b"still forwarded" == await viewer.recv()
        await host.close()
        await viewer.wait_closed()
        assert 0 == len(relay_state(relay.app).deadlines)

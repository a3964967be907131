"""The relay's direct path for frames: written out at once only when nothing is due first, counted alike."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families
from websockets.frames import Frame, Opcode

from tether.relay.broker import Attachment, Mailbox, MemoryBroker, QueueLimits
from tether.relay.metrics import RelayMetrics
from tether.relay.routing import CloseCode, Drop, Role
from tether.relay.waits import Deadlines, Flag, Inbox
from tether.relay.websocket import frame_header

SID = "session-id-0123456789"


def wire() -> tuple[Mailbox, list[bytes], list[bool]]:
    """A mailbox whose connection writes out directly while ``open[0]`` is True, into ``written``."""
    written: list[bytes] = []
    open_ = [True]

    def direct(frame: bytes) -> bool:
        if open_[0]:
            written.append(frame)
        return open_[0]

    mailbox = Mailbox(QueueLimits())
    mailbox.direct = direct
    return mailbox, written, open_


async def test_a_frame_goes_out_at_once_only_when_nothing_waits_before_it() -> None:
    """Direct while the queue is empty; once a frame had to wait, the next ones queue behind it, in order."""
    mailbox, written, open_ = wire()
    mailbox.push(b"1")
    open_[0] = False  # the transport is paused: this one waits in the queue
    mailbox.push(b"2")
    open_[0] = True
    mailbox.push(b"3")  # the transport took writes again, but "2" is still queued
    assert ([b"1"], 2) == (written, len(mailbox))
    assert (b"2", b"3") == (await mailbox.get(), await mailbox.get())


async def test_the_writer_is_woken_only_for_what_it_must_send() -> None:
    """A frame written out at once wakes no writer; a queued item or the close does, and take() empties to None."""
    mailbox, written, _ = wire()
    woken: list[int] = []
    mailbox.wake = lambda: woken.append(len(mailbox))
    mailbox.push(b"direct")
    assert ([b"direct"], []) == (written, woken)
    mailbox.push_control("control")
    assert ([1], "control", None) == (woken, mailbox.take(), mailbox.take())
    mailbox.close(CloseCode.SESSION_ENDED)
    assert ([1, 0], CloseCode.SESSION_ENDED) == (woken, mailbox.take())
    mailbox.drop()
    assert mailbox.wake is None


async def test_a_frame_waits_while_the_writer_is_sending_the_previous_one() -> None:
    """The writer holds a taken item until it calls get again: a new frame must not overtake it."""
    mailbox, written, _ = wire()
    mailbox.push_control("control")  # control messages always go through the writer
    assert "control" == await mailbox.get()
    mailbox.push(b"frame")
    assert ([], 1) == (written, len(mailbox))
    assert b"frame" == await mailbox.get()
    getting = asyncio.ensure_future(mailbox.get())  # the writer is back for more: it holds nothing now
    await asyncio.sleep(0)
    mailbox.push(b"after")
    assert ([b"after"], False) == (written, getting.done())
    getting.cancel()


async def test_an_idle_mailbox_holds_no_queue_and_no_event() -> None:
    """Nothing is allocated for a connection that sends and waits for nothing."""
    mailbox, _, _ = wire()
    mailbox.push(b"direct")
    assert (None, None, 0) == (mailbox._items, mailbox._changed, mailbox.budget.used)


class Recorder(MemoryBroker):
    """A broker with its own forward: it gets no shortcut (every frame goes through forward)."""

    async def forward(self, attachment: Attachment, frame: bytes) -> None:
        await super().forward(attachment, frame)


async def test_forward_now_delivers_when_there_is_room_and_declines_when_full() -> None:
    """True once delivered or counted as a drop; False when the frame would have to wait for room."""
    broker = MemoryBroker(limits=QueueLimits(max_bytes=4, max_frames=2))
    host = await broker.attach(SID, Role.HOST)
    assert broker.forward_now(host, b"x")  # no viewer yet: dropped and counted
    viewer = await broker.attach(SID, Role.VIEWER)
    viewer.mailbox._items = None  # forget the `peer joined` notice: only frames here
    viewer.mailbox._bytes = 0
    assert (True, True, False) == tuple(broker.forward_now(host, frame) for frame in (b"12", b"34", b"5"))
    assert 1 == broker.counters[Drop.NO_PEER]
    assert not Recorder().forward_now(host, b"x")


def test_frame_headers_are_those_of_websockets() -> None:
    """The direct path's frame headers match websockets' own serialization of a server frame."""
    for size in (0, 125, 126, 65535, 65536, 1 << 20):
        payload = bytes(size)
        expected = Frame(Opcode.BINARY, payload).serialize(mask=False)
        assert expected == frame_header(size) + payload


def test_the_forwarding_histogram_is_cumulative_as_prometheus_reads_it() -> None:
    """Frames counted in plain ints come out as Prometheus buckets, count and sum."""
    metrics = RelayMetrics()
    for seconds in (0.000_01, 0.000_3, 0.000_3, 20.0):
        metrics.forwarded(10, seconds)
    samples = {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in text_string_to_metric_families(metrics.exposition(metrics.figures, "")[0].decode())
        if family.name == "tether_relay_forward_seconds"
        for sample in family.samples
    }
    assert 1 == samples["tether_relay_forward_seconds_bucket", "5e-05"]
    assert 3 == samples["tether_relay_forward_seconds_bucket", "0.0005"]
    assert 3 == samples["tether_relay_forward_seconds_bucket", "10.0"]
    assert 4 == samples["tether_relay_forward_seconds_bucket", "+Inf"]
    assert 4 == samples["tether_relay_forward_seconds_count", ""]
    assert abs(20.00061 - samples["tether_relay_forward_seconds_sum", ""]) < 1e-9
    assert (4, 40) == (metrics.frames, metrics.bytes)


async def test_the_lean_queue_and_flag_wake_their_waiters() -> None:
    """Inbox hands items out in order to a waiting reader; Flag wakes every waiter when set."""
    inbox: Inbox[str] = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    assert ("a", "b", True) == (await reader, await inbox.get(), inbox.empty())
    flag = Flag()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)
    flag.set()
    assert [True, True] == await asyncio.gather(*waiters)
    flag.clear()
    assert not flag.is_set()


async def test_deadlines_fire_once_never_early_and_a_moved_or_dropped_one_not_at_all() -> None:
    """A key expires once, at the end of its deadline's second; setting it again moves it; dropping forgets it."""
    now = [100.95]
    expired: list[str] = []
    fired = asyncio.Event()

    def lapse(key: str) -> None:
        expired.append(key)
        fired.set()

    deadlines: Deadlines[str] = Deadlines(lapse, lambda: now[0])
    deadlines.set("moved", 100.97)  # due at 101, 0.05 s from "now"
    deadlines.set("moved", 5000.0)  # ... moved to much later
    deadlines.set("dropped", 100.98)
    deadlines.drop("dropped")
    deadlines.drop("never set")
    deadlines.set("due", 100.99)
    deadlines.set("later", 7000.0)
    assert 3 == len(deadlines)
    await asyncio.sleep(0)
    assert [] == expired  # its second has not ended yet
    await asyncio.wait_for(fired.wait(), timeout=10)
    assert (["due"], 2) == (expired, len(deadlines))
    deadlines.drop("moved")
    deadlines.drop("later")
    assert 0 == len(deadlines)
    fired.clear()
    deadlines.set("past", 50.0)  # already lapsed: at once
    await asyncio.wait_for(fired.wait(), timeout=10)
    assert ["due", "past"] == expired

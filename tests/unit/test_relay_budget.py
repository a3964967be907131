"""The relay-wide budget of queued bytes: shared by every mailbox, given back, and who is cut when it is full."""

from __future__ import annotations

import asyncio
import platform
import subprocess
import sys

import pytest

from tether.relay.broker import Budget, Mailbox, MemoryBroker, QueueLimits
from tether.relay.routing import CloseCode, Drop, Role

SID, OTHER = "session-id-0123456789", "session-id-abcdefghij"


async def test_mailboxes_share_one_budget() -> None:
    """A frame needs room in its own queue and in the budget that all queues share."""
    budget = Budget(10)
    first, second = Mailbox(QueueLimits(max_bytes=10), budget), Mailbox(QueueLimits(max_bytes=10), budget)
    first.push(b"12345678")
    assert (True, True, False) == (first.fits_own(2), second.has_room(2), second.has_room(3))
    assert 8 == budget.used


async def test_bytes_go_back_when_sent_discarded_or_dropped() -> None:
    """get, close with discard, and drop (the writer is gone) all give the bytes back."""
    budget = Budget(100)
    sent, discarded, dropped = (Mailbox(QueueLimits(), budget) for _ in range(3))
    for mailbox in (sent, discarded, dropped):
        mailbox.push(b"frame")
    await sent.get()
    discarded.close(CloseCode.TOO_SLOW, discard=True)
    dropped.drop()
    dropped.push(b"after")
    assert (0, 15) == (budget.used, budget.peak)


async def test_room_freed_elsewhere_wakes_a_waiting_sender() -> None:
    """A sender waiting on the budget wakes when another mailbox drains."""
    budget = Budget(10)
    full, waiting = Mailbox(QueueLimits(slow_timeout=5), budget), Mailbox(QueueLimits(slow_timeout=5), budget)
    full.push(b"1234567890")
    room = asyncio.create_task(waiting.wait_for_room(4))
    await asyncio.sleep(0)
    assert not room.done()
    await full.get()
    assert await asyncio.wait_for(room, 1)


async def test_a_full_budget_cuts_the_reader_that_drains_least() -> None:
    """Past slow_timeout on a full budget, the stalest reader is closed 4408, not the sender's own peer."""
    broker = MemoryBroker(limits=QueueLimits(max_bytes=200, slow_timeout=0.01, total_bytes=250))
    ends = []
    for session in (SID, OTHER):
        host = await broker.attach(session, Role.HOST)
        viewer = await broker.attach(session, Role.VIEWER)
        for end in (host, viewer):
            await end.mailbox.get()  # each end reads its `peer joined`
        ends.append((host, viewer))
    (stale_host, stale_viewer), (live_host, live_viewer) = ends
    await broker.forward(stale_host, b"x" * 150)  # nobody reads this viewer
    await broker.forward(live_host, b"y" * 100)
    assert b"y" * 100 == await live_viewer.mailbox.get()
    await broker.forward(live_host, b"z" * 120)  # 150 + 120 > 250: wait, then cut the stale reader
    assert (CloseCode.TOO_SLOW, None) == (stale_viewer.mailbox.closing, live_viewer.mailbox.closing)
    assert (1, b"z" * 120) == (broker.counters[Drop.TOO_SLOW], await live_viewer.mailbox.get())


async def test_the_budget_reports_the_most_queued_each_time_its_queues_are_empty_again() -> None:
    """``drained`` gets the high-water mark once ``used`` is back to 0, and never in between."""
    budget = Budget(1000)
    reports: list[int] = []
    budget.drained = reports.append
    first, second = Mailbox(QueueLimits(), budget), Mailbox(QueueLimits(), budget)
    first.push(b"x" * 300)
    second.push(b"y" * 200)
    await first.get()
    assert [] == reports  # 200 bytes still queued
    await second.get()
    first.push(b"z" * 50)
    first.drop()
    assert ([500, 50], 500) == (reports, budget.peak)


def test_a_standalone_relay_keeps_frame_sized_blocks_on_the_heap() -> None:
    """With glibc, a 1 MiB block is no mapping of its own (one per frame doubled a 1 MB round trip)."""
    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        pytest.skip("glibc only")
    code = (
        "import ctypes\n"
        "from tether.relay import process\n"
        "drained = process.return_freed_memory()\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.malloc.restype = ctypes.c_void_p\n"
        "block = libc.malloc(1024 * 1024)\n"
        "heap = [line.split()[0].split('-') for line in open('/proc/self/maps') if line.rstrip().endswith('[heap]')]\n"
        "print(drained is not None, any(int(a, 16) <= block < int(b, 16) for a, b in heap))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "True True" == result.stdout.strip()

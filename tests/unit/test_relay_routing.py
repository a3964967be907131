"""The relay's routing rules and its bounded mailboxes, without sockets."""

from __future__ import annotations

import asyncio

import pytest

from tether.relay.broker import Close, Control, Mailbox, MemoryBroker, Refused
from tether.relay.routing import CloseCode, Role, admit

SID = "A" * 22
HOST, VIEWER = Role.HOST, Role.VIEWER


@pytest.mark.parametrize(
    ("session_id", "role", "present", "expected"),
    [
        (SID, HOST, set(), None),
        (SID, VIEWER, {HOST}, None),
        (SID, VIEWER, set(), CloseCode.UNKNOWN_SESSION),
        (SID, HOST, {HOST}, CloseCode.SESSION_BUSY),
        (SID, VIEWER, {HOST, VIEWER}, CloseCode.SESSION_BUSY),
        ("bad id!", HOST, set(), CloseCode.BAD_SESSION_ID),
    ],
)
def test_admission_table(session_id: str, role: Role, present: set[Role], expected: CloseCode | None) -> None:
    """One host, at most one viewer, and a viewer only where a host is."""
    assert expected == admit(session_id, role, frozenset(present))


async def test_mailbox_is_bounded_by_bytes() -> None:
    """A full mailbox makes the sender wait, and give up after its timeout."""
    mailbox = Mailbox(max_bytes=10, max_frames=100)
    assert await mailbox.put(b"x" * 8, timeout=0.01)
    assert not await mailbox.put(b"y" * 8, timeout=0.01)
    assert b"x" * 8 == await mailbox.get()
    assert await mailbox.put(b"y" * 8, timeout=0.01)


async def test_control_and_close_bypass_the_bound_and_close_ends_input() -> None:
    """The relay can always say what happened; after Close nothing more is queued."""
    mailbox = Mailbox(max_bytes=1, max_frames=1)
    assert await mailbox.put(b"full", timeout=0.01)
    mailbox.put_nowait(Control("notice"))
    mailbox.put_nowait(Close(CloseCode.SESSION_ENDED))
    assert not await mailbox.put(b"late", timeout=0.01)
    assert [b"full", Control("notice"), Close(CloseCode.SESSION_ENDED)] == [await mailbox.get() for _ in range(3)]


async def test_slow_reader_is_cut_off() -> None:
    """A viewer that never reads is closed with 4408 instead of holding the host forever."""
    broker = MemoryBroker(slow_timeout=0.05)
    host = await broker.attach(SID, HOST)
    viewer = await broker.attach(SID, VIEWER)
    viewer.mailbox.max_frames = 2
    for _ in range(4):
        await broker.forward(host, b"frame")
    items = [await viewer.mailbox.get() for _ in range(3)]  # peer notice, one frame, then the close
    assert [Control, bytes, Close] == [type(i) for i in items]
    assert Close(CloseCode.TOO_SLOW) == items[-1]
    assert 1 == broker.counters.snapshot()["too_slow"]


async def test_host_detach_forgets_the_session() -> None:
    """Nothing of a session stays once its host is gone."""
    broker = MemoryBroker()
    host = await broker.attach(SID, HOST)
    viewer = await broker.attach(SID, VIEWER)
    await broker.detach(host)
    assert 0 == broker.session_count()
    with pytest.raises(Refused):
        await broker.attach(SID, VIEWER)
    drained = [await asyncio.wait_for(viewer.mailbox.get(), 1) for _ in range(2)]
    assert Close(CloseCode.SESSION_ENDED) == drained[-1]

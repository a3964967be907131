"""Brokers pair the host and viewer ends of sessions and move frames between them.

The endpoints (``app.py``) use only the :class:`Broker` interface. :class:`MemoryBroker`
keeps everything in this process (the embedded default). A Redis broker slots in behind
the same interface so that many relay processes share sessions:

- presence: one expiring key per session and role (``SET NX EX``, refreshed while the
  connection lives), read to get the :class:`~tether.relay.routing.SessionState`;
- delivery: one pub/sub channel per session and role; each attachment's subscriber task
  pushes what arrives into the attachment's local :class:`Mailbox` with the same
  wait-then-evict rule as ``MemoryBroker.forward``;
- decisions: the same ``routing.join`` / ``routing.leave`` table, effects published to
  the ends' channels.

Either way nothing outlives the connections: the only content the relay holds is the
in-flight frames in bounded mailboxes, and a session is gone when its host leaves.

Calling contract, per connection: ``attach`` once (it raises :class:`Refused`), then
``forward`` for every binary frame the connection sends, and ``detach`` exactly once at
the end (also after the relay closed the connection; a second detach is a no-op). The
connection's writer reads ``attachment.mailbox.get()`` and sends what it returns until it
returns a :class:`~tether.relay.routing.CloseCode`, then closes with that code.
"""

from __future__ import annotations

import abc
import asyncio
import collections
from dataclasses import dataclass, field

from tether.errors import BrokerUnavailable, Refused
from tether.relay import routing
from tether.relay.config import QUEUE_BYTES, QUEUE_FRAMES, SLOW_TIMEOUT
from tether.relay.routing import CloseCode, Counters, Drop, Role, SessionState

CONTROL_SLACK = 64  # control messages a full queue still takes before its reader counts as too slow


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """Bounds of one connection's outgoing queue."""

    max_bytes: int = QUEUE_BYTES
    max_frames: int = QUEUE_FRAMES
    slow_timeout: float = SLOW_TIMEOUT


Item = bytes | str | CloseCode
"""What a mailbox hands out: a binary frame, a control message (text), or the final close."""


class Mailbox:
    """The bounded queue of what one connection is to send, in order.

    Bounded by bytes and by count. One reader (the connection's writer) calls ``get``;
    frames are added by ``wait_for_room`` followed, with no ``await`` in between, by
    ``push`` (so a check made after waking still holds when the frame is added).
    Control messages bypass the bound up to ``CONTROL_SLACK`` so the relay can always tell
    a connection what happened. After ``close`` nothing more is added, and ``get`` returns
    what was queued (nothing, if closed with ``discard``), then the close code.
    """

    def __init__(self, limits: QueueLimits) -> None:
        self.limits = limits
        self._items: collections.deque[bytes | str] = collections.deque()
        self._bytes = 0
        self._changed = asyncio.Event()  # set on every get, push and close; waiters re-check
        self.closing: CloseCode | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in the queue."""
        return self._bytes

    def has_room(self, size: int) -> bool:
        """Whether a frame of ``size`` bytes fits now (an empty queue takes any frame)."""
        if not self._items:
            return True
        return self._bytes + size <= self.limits.max_bytes and len(self._items) < self.limits.max_frames

    async def wait_for_room(self, size: int) -> bool:
        """Wait until a frame of ``size`` bytes fits: True; False if closed or still full after ``slow_timeout``."""
        try:
            async with asyncio.timeout(self.limits.slow_timeout):
                while self.closing is None and not self.has_room(size):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return self.closing is None

    def push(self, frame: bytes) -> None:
        """Queue a binary frame; call right after ``wait_for_room`` returned True."""
        if self.closing is None:
            self._append(frame)

    def push_control(self, text: str) -> bool:
        """Queue a control message past the bound; False if the queue overflows (evict its reader)."""
        if self.closing is not None:
            return True
        if len(self._items) >= self.limits.max_frames + CONTROL_SLACK:
            return False
        self._append(text)
        return True

    def close(self, code: CloseCode, *, discard: bool = False) -> None:
        """End the queue with ``code``; ``discard`` drops what is queued so the close goes first."""
        if self.closing is not None:
            return
        self.closing = code
        if discard:
            self._items.clear()
            self._bytes = 0
        self._changed.set()  # wakes both the reader and blocked senders

    async def get(self) -> Item:
        """The next item, waiting for one; the close code once closed and drained."""
        while not self._items:
            if self.closing is not None:
                return self.closing
            self._changed.clear()
            await self._changed.wait()
        item = self._items.popleft()
        self._bytes -= len(item)
        self._changed.set()
        return item

    def _append(self, item: bytes | str) -> None:
        self._items.append(item)
        self._bytes += len(item)
        self._changed.set()


@dataclass(eq=False, slots=True)
class Attachment:
    """One connection's hold on one end of one session."""

    session_id: str
    role: Role
    mailbox: Mailbox = field(repr=False)


class Broker(abc.ABC):
    """Pairs the two ends of sessions and delivers frames between them (see the module doc)."""

    def __init__(self, counters: Counters | None = None, limits: QueueLimits | None = None) -> None:
        self.counters = counters if counters is not None else Counters()
        self.limits = limits if limits is not None else QueueLimits()

    @abc.abstractmethod
    async def attach(self, session_id: str, role: Role) -> Attachment:
        """Take the end ``role`` of ``session_id``; raises Refused when routing says no.

        A viewer's ``peer joined`` messages are queued for both ends before this returns,
        hence before any of the viewer's frames can be forwarded.
        """

    @abc.abstractmethod
    async def forward(self, attachment: Attachment, frame: bytes) -> None:
        """Deliver ``frame`` to the other end of the attachment's session, unparsed.

        Waits while the other end's queue is full. If it stays full for ``slow_timeout``,
        the other end is closed 4408 and leaves the session. A frame with nobody to take it
        is dropped and counted. Never raises for routing reasons.
        """

    @abc.abstractmethod
    async def detach(self, attachment: Attachment) -> None:
        """Let go of the end; a leaving host ends its session and closes its viewer 4000 at once."""

    @abc.abstractmethod
    async def evict(self, attachment: Attachment, code: CloseCode) -> None:
        """Close this end with ``code`` ahead of what it has queued, and take it out of its session."""

    @abc.abstractmethod
    async def session_count(self) -> int:
        """Sessions that have a host attached."""

    @abc.abstractmethod
    async def close_all(self, code: CloseCode) -> None:
        """Close every connection of this relay with ``code`` (the relay is stopping)."""


class MemoryBroker(Broker):
    """Routing in this process's memory: the embedded default, one relay process."""

    def __init__(self, counters: Counters | None = None, limits: QueueLimits | None = None) -> None:
        super().__init__(counters, limits)
        self._sessions: dict[str, dict[Role, Attachment]] = {}

    async def attach(self, session_id: str, role: Role) -> Attachment:
        ends = self._sessions.get(session_id, {})
        outcome = routing.join(session_id, role, SessionState.of(set(ends)))
        if outcome.refusal is not None:
            raise Refused(outcome.refusal, routing.REFUSALS[outcome.refusal])
        attachment = Attachment(session_id, role, Mailbox(self.limits))
        ends[role] = attachment
        self._sessions[session_id] = ends
        self._apply(ends, outcome.effects)
        return attachment

    async def forward(self, attachment: Attachment, frame: bytes) -> None:
        ends = self._sessions.get(attachment.session_id, {})
        if ends.get(attachment.role) is not attachment:
            return  # this end was already evicted or its session ended: nobody reads this
        target = routing.destination(attachment.role, SessionState.of(set(ends)))
        if isinstance(target, Drop):
            self.counters.count(target)
            return
        peer = ends[target]
        room = await peer.mailbox.wait_for_room(len(frame))
        # Re-check after the wait: either end may have left meanwhile, and a new viewer may
        # have joined, whose host must not get a frame of the old one after its `joined`.
        if not (self._current(attachment) and self._current(peer)):
            return
        if room:
            peer.mailbox.push(frame)
        elif peer.mailbox.closing is None:
            await self.evict(peer, CloseCode.TOO_SLOW)
        # else: the other end is already being closed; the frame goes with it

    async def detach(self, attachment: Attachment) -> None:
        self._leave(attachment)

    async def evict(self, attachment: Attachment, code: CloseCode) -> None:
        if not self._current(attachment):
            return
        if code is CloseCode.TOO_SLOW and attachment.mailbox.closing is None:
            self.counters.count(Drop.TOO_SLOW)
        # Discard what is queued: a reader that does not drain would never reach the close.
        attachment.mailbox.close(code, discard=True)
        self._leave(attachment)

    async def session_count(self) -> int:
        return len(self._sessions)

    async def close_all(self, code: CloseCode) -> None:
        sessions, self._sessions = self._sessions, {}
        for ends in sessions.values():
            for attachment in ends.values():
                attachment.mailbox.close(code)

    def _current(self, attachment: Attachment) -> bool:
        return self._sessions.get(attachment.session_id, {}).get(attachment.role) is attachment

    def _leave(self, attachment: Attachment) -> None:
        if not self._current(attachment):
            return  # already gone: evicted, or its session ended with its host
        ends = self._sessions[attachment.session_id]
        outcome = routing.leave(attachment.role, SessionState.of(set(ends)))
        del ends[attachment.role]
        self._apply(ends, outcome.effects)
        if outcome.next is SessionState.ABSENT:
            # Nothing of the session stays at the relay (DESIGN.md rule 8).
            del self._sessions[attachment.session_id]

    def _apply(self, ends: dict[Role, Attachment], effects: tuple[routing.Effect, ...]) -> None:
        for effect in effects:
            target = ends.get(effect.to if isinstance(effect, routing.Notify) else effect.role)
            if target is None:
                continue
            if isinstance(effect, routing.Close):
                target.mailbox.close(effect.code)
            elif not target.mailbox.push_control(effect.message()):
                # A reader so far behind that even control messages pile up is too slow;
                # closing it here also bounds what a join/leave flood can queue.
                self.counters.count(Drop.TOO_SLOW)
                target.mailbox.close(CloseCode.TOO_SLOW, discard=True)


def create_broker(url: str, counters: Counters | None = None, limits: QueueLimits | None = None) -> Broker:
    """The broker named by ``url``: ``memory``; raises BrokerUnavailable for any other.

    Backends are imported here, lazily, so the memory broker never loads a Redis client.
    """
    if url == "memory":
        return MemoryBroker(counters, limits)
    if url.startswith(("redis://", "rediss://")):
        raise BrokerUnavailable(f"the Redis broker ({url.split('://', 1)[0]}://...) is not available yet")
    raise BrokerUnavailable(f"unknown broker {url!r}: expected memory or redis://HOST:PORT")

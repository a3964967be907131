"""Brokers pair the host and viewer ends of sessions and move frames between them.

The endpoints (``app.py``) use only the :class:`Broker` interface. :class:`MemoryBroker`
keeps everything in this process (the embedded default). A Redis broker slots in behind
the same interface so that many relay processes share sessions:

- presence: one expiring key per session and role naming the process and connection
  that hold it, read to get the :class:`~tether.relay.routing.SessionState`;
- delivery: one pub/sub channel per relay process; what arrives for an end is pushed
  into its local :class:`Mailbox` (``redis_wire.py`` holds the two sockets to Redis);
- decisions: the same ``routing.join`` / ``routing.leave`` table, effects for an end on
  another process published to that process (``redis_broker.py``).

Either way nothing outlives the connections: the only content the relay holds is the
in-flight frames in bounded mailboxes, and a session is gone when its host leaves.

Memory is bounded twice: each mailbox by its ``QueueLimits``, and all mailboxes of the
relay together by one :class:`Budget` (``total_bytes``), so that many sessions whose
readers never read cannot add up to more. A frame needs room in both; its sender waits,
and when there is still no room after ``slow_timeout`` a reader is cut 4408: the
sender's peer if its own queue is the full one, else the reader that has gone longest
without draining anything (in a flood, the flooder's).

Calling contract, per connection: ``attach`` once (it raises :class:`Refused`; a viewer
may ask to take over the seat), then ``forward`` for every binary frame the connection
sends (or first ``forward_now``, which does the same without awaiting when no wait is
needed and says whether it did; ``drop`` when a host asks to have its viewer dropped), and
``detach`` exactly once at the end (also after the relay closed the connection; a second
detach is a no-op). The connection's writer reads ``attachment.mailbox.get()`` (or
``take``) and sends what it returns until it returns a
:class:`~tether.relay.routing.CloseCode`, then closes with that code.
"""

from __future__ import annotations

import abc
import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field

from tether.errors import BrokerUnavailable, Refused
from tether.relay import routing
from tether.relay.config import QUEUE_BYTES, QUEUE_FRAMES, SLOW_TIMEOUT, TOTAL_QUEUE_BYTES
from tether.relay.ledger import Ledger
from tether.relay.routing import CloseCode, Counters, Drop, Role, SessionState
from tether.relay.waits import Flag

CONTROL_SLACK = 64  # control messages a full queue still takes before its reader counts as too slow


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """Bounds of one connection's outgoing queue."""

    max_bytes: int = QUEUE_BYTES
    max_frames: int = QUEUE_FRAMES
    slow_timeout: float = SLOW_TIMEOUT
    total_bytes: int = TOTAL_QUEUE_BYTES  # every queue of the relay together (the Budget)


class Budget:
    """The bytes queued in all mailboxes of one relay, bounded by ``limit``.

    Mailboxes ``take`` when they queue an item and ``give`` back when it is sent or
    discarded. Frames wait for room (``fits``); control messages are taken past the limit
    (they are small, and bounded per mailbox). A mailbox waiting for room registers its
    event in ``waiting`` so that room freed anywhere wakes it.
    """

    def __init__(self, limit: int = TOTAL_QUEUE_BYTES) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0  # the most ever used at once (for /metrics and the benchmark)
        self.high = 0  # the most used at once since ``used`` was last 0
        self.drained: Callable[[int], None] | None = None  # called with ``high`` whenever ``used`` is 0 again
        self.waiting: set[Flag] = set()

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes stay within the limit."""
        return self.used + size <= self.limit

    def take(self, size: int) -> None:
        """Count ``size`` bytes as queued."""
        self.used += size
        if self.used > self.high:
            self.high = self.used
            self.peak = max(self.peak, self.used)

    def give(self, size: int) -> None:
        """Count ``size`` bytes as gone, and wake whoever waits for room."""
        self.used -= size
        if size:
            for event in self.waiting:
                event.set()
            if not self.used:
                high, self.high = self.high, 0
                if self.drained is not None:
                    self.drained(high)


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

    ``direct``, when the connection has one (``websocket.FastPath.send_binary``), writes a
    frame out at once: ``push`` uses it when nothing is queued and the writer holds nothing
    (``sending``), so a frame skips the queue only when it would have been next anyway.
    The queue and its event are made on demand: an idle connection holds neither. So can
    the writer be: ``wake``, when set, is called whenever something is queued or the
    mailbox closes, and a writer that finds nothing to ``take`` may end (``app.py``).
    """

    __slots__ = ("_bytes", "_changed", "_dropped", "_items", "budget", "closing", "direct", "limits", "sending",
                 "stalled_since", "wake")  # fmt: skip

    def __init__(self, limits: QueueLimits, budget: Budget | None = None) -> None:
        self.limits = limits
        self.budget = budget if budget is not None else Budget(limits.total_bytes)
        self._items: collections.deque[bytes | str] | None = None
        self._bytes = 0
        self._changed: Flag | None = None  # set on every get, push and close; waiters re-check
        self._dropped = False
        self.closing: CloseCode | None = None
        # Since when the reader has taken nothing while something waited for it (None: empty).
        self.stalled_since: float | None = None
        self.direct: Callable[[bytes], bool] | None = None
        self.sending = False  # the writer took an item and has not finished sending it
        self.wake: Callable[[], None] | None = None  # starts the connection's writer if none runs

    def __len__(self) -> int:
        return len(self._items) if self._items else 0

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in the queue."""
        return self._bytes

    def has_room(self, size: int) -> bool:
        """Whether a frame of ``size`` bytes fits now, in this queue (see ``fits_own``) and in the budget."""
        return self.fits_own(size) and self.budget.fits(size)

    def fits_own(self, size: int) -> bool:
        """Whether a frame of ``size`` bytes fits within this queue's own bounds."""
        if not self._items:
            return True
        return self._bytes + size <= self.limits.max_bytes and len(self._items) < self.limits.max_frames

    def _event(self) -> Flag:
        if self._changed is None:
            self._changed = Flag()
        return self._changed

    async def wait_for_room(self, size: int) -> bool:
        """Wait until a frame of ``size`` bytes fits: True; False if closed or still full after ``slow_timeout``."""
        if self.closing is None and self.has_room(size):
            return True  # the common case: no timer, no wait
        changed = self._event()
        try:
            async with asyncio.timeout(self.limits.slow_timeout):
                while self.closing is None and not self.has_room(size):
                    changed.clear()
                    self.budget.waiting.add(changed)
                    try:
                        await changed.wait()
                    finally:
                        self.budget.waiting.discard(changed)
        except TimeoutError:
            return False
        return self.closing is None

    def push(self, frame: bytes) -> None:
        """Queue a binary frame (or write it out now: class doc); call right after ``wait_for_room`` returned True."""
        if self.closing is None and not self._dropped:
            if not self._items and not self.sending and self.direct is not None and self.direct(frame):
                return
            self._append(frame)

    def push_control(self, text: str) -> bool:
        """Queue a control message past the bound; False if the queue overflows (evict its reader)."""
        if self.closing is not None or self._dropped:
            return True
        if len(self) >= self.limits.max_frames + CONTROL_SLACK:
            return False
        self._append(text)
        return True

    def close(self, code: CloseCode, *, discard: bool = False) -> None:
        """End the queue with ``code``; ``discard`` drops what is queued so the close goes first."""
        if self.closing is not None:
            return
        self.closing = code
        if discard:
            self._clear()
        if self._changed is not None:
            self._changed.set()  # wakes both the reader and blocked senders
        if self.wake is not None:
            self.wake()

    def drop(self) -> None:
        """The connection's writer is gone: forget what is queued, give its bytes back, take nothing more."""
        self._dropped = True
        self.direct = None
        self.wake = None
        self._clear()
        if self._changed is not None:
            self._changed.set()

    def _clear(self) -> None:
        self._items = None
        self.budget.give(self._bytes)
        self._bytes = 0
        self.stalled_since = None

    async def get(self) -> Item:
        """The next item, waiting for one; the close code once closed and drained."""
        while (item := self.take()) is None:
            changed = self._event()
            changed.clear()
            await changed.wait()
        return item

    def take(self) -> Item | None:
        """The next item, or the close code once closed and drained; None when nothing is to be sent now."""
        self.sending = False  # the writer is back: what it took before has been sent
        if not self._items:
            return self.closing
        item = self._items.popleft()
        if not self._items:
            self._items = None
        self.sending = True
        self._bytes -= len(item)
        self.budget.give(len(item))
        self.stalled_since = asyncio.get_running_loop().time() if self._items else None
        if self._changed is not None:
            self._changed.set()
        return item

    def _append(self, item: bytes | str) -> None:
        if not self._items:
            self.stalled_since = asyncio.get_running_loop().time()
            if self._items is None:
                self._items = collections.deque()
        self._items.append(item)
        self._bytes += len(item)
        self.budget.take(len(item))
        if self._changed is not None:
            self._changed.set()
        if self.wake is not None:
            self.wake()


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
        self.budget = Budget(self.limits.total_bytes)  # shared by every mailbox of this broker
        self.ledger = Ledger()  # credential state: this process's own unless the broker shares it

    async def start(self) -> None:  # noqa: B027 - optional hook: the memory broker needs nothing
        """Connect to what the broker needs (raises BrokerUnavailable); nothing, in memory."""

    async def ready(self) -> bool:
        """Whether the broker can route now (/readyz): always, in memory; Redis answers a PING."""
        return True

    @abc.abstractmethod
    async def attach(self, session_id: str, role: Role, take_over: bool = False, returning: bool = False) -> Attachment:
        """Take the end ``role`` of ``session_id``; raises Refused when routing says no.

        A viewer's ``peer joined`` messages are queued for both ends before this returns,
        hence before any of the viewer's frames can be forwarded. ``take_over``: a viewer
        replaces the one in place, which is closed 4410 first (routing's TAKE_OVER).
        ``returning``: a host coming back with its own credential replaces its old connection
        (closed 4410; its viewer 4503), as routing's RETURN says.
        """

    @abc.abstractmethod
    async def drop(self, attachment: Attachment) -> None:
        """The host asks to have its viewer closed 4403 (a device it refused); nothing if none is there."""

    @abc.abstractmethod
    async def forward(self, attachment: Attachment, frame: bytes) -> None:
        """Deliver ``frame`` to the other end of the attachment's session, unparsed.

        Waits while the other end's queue is full. If it stays full for ``slow_timeout``,
        the other end is closed 4408 and leaves the session. A frame with nobody to take it
        is dropped and counted. Never raises for routing reasons.
        """

    def forward_now(self, attachment: Attachment, frame: bytes) -> bool:
        """``forward`` when it needs no wait: True once done (delivered, queued, or dropped and counted).

        False: nothing was done, call ``forward`` (the frame may have to wait for room). A
        subclass that overrides ``forward`` and not this gets no shortcut: every frame then
        goes through its ``forward``.
        """
        return False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "forward" in vars(cls) and "forward_now" not in vars(cls):
            cls.forward_now = Broker.forward_now  # type: ignore[method-assign]

    @abc.abstractmethod
    async def detach(self, attachment: Attachment, clean: bool = True) -> None:
        """Let go of the end; a leaving host ends its session and closes its viewer at once.

        ``clean``: the end closed on purpose (its viewer gets 4000 ``session ended``); else its
        connection was lost and the viewer gets 4503 ``host away`` (routing.py).
        """

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

    async def attach(self, session_id: str, role: Role, take_over: bool = False, returning: bool = False) -> Attachment:
        ends = self._sessions.get(session_id, {})
        outcome = routing.join(session_id, role, SessionState.of(set(ends)), take_over, returning)
        if outcome.refusal is not None:
            raise Refused(outcome.refusal, routing.REFUSALS[outcome.refusal])
        attachment = Attachment(session_id, role, Mailbox(self.limits, self.budget))
        self._dismiss(ends, outcome.effects)  # a take-over: the viewer in place goes first
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
        while True:
            room = await peer.mailbox.wait_for_room(len(frame))
            # Re-check after the wait: either end may have left meanwhile, and a new viewer may
            # have joined, whose host must not get a frame of the old one after its `joined`.
            if not (self._current(attachment) and self._current(peer)):
                return
            if room:
                peer.mailbox.push(frame)
                return
            if peer.mailbox.closing is not None:
                return  # the other end is already being closed; the frame goes with it
            # Still no room after slow_timeout. If the peer's own queue is the full one, its
            # reader is too slow; if the relay-wide budget is, cut whoever drains least.
            stalest = None if not peer.mailbox.fits_own(len(frame)) else self._stalest()
            if stalest is None or stalest is peer:
                await self.evict(peer, CloseCode.TOO_SLOW)
                return
            await self.evict(stalest, CloseCode.TOO_SLOW)

    def forward_now(self, attachment: Attachment, frame: bytes) -> bool:
        ends = self._sessions.get(attachment.session_id)
        if ends is None or ends.get(attachment.role) is not attachment:
            return True  # this end was already evicted or its session ended: nobody reads this
        target = routing.destination(attachment.role, SessionState.of(set(ends)))
        if isinstance(target, Drop):
            self.counters.count(target)
            return True
        mailbox = ends[target].mailbox
        if mailbox.closing is not None or not mailbox.has_room(len(frame)):
            return False
        mailbox.push(frame)
        return True

    def _stalest(self) -> Attachment | None:
        """The attached end whose reader has gone longest without taking a queued item."""
        stalled = [
            attachment
            for ends in self._sessions.values()
            for attachment in ends.values()
            if attachment.mailbox.stalled_since is not None and attachment.mailbox.closing is None
        ]
        return min(stalled, key=lambda attachment: attachment.mailbox.stalled_since or 0.0, default=None)

    async def detach(self, attachment: Attachment, clean: bool = True) -> None:
        self._leave(attachment, clean)

    async def drop(self, attachment: Attachment) -> None:
        if not self._current(attachment):
            return
        ends = self._sessions[attachment.session_id]
        outcome = routing.drop(attachment.role, SessionState.of(set(ends)))
        self._dismiss(ends, outcome.effects)
        self._apply(ends, outcome.effects)

    @staticmethod
    def _dismiss(ends: dict[Role, Attachment], effects: tuple[routing.Effect, ...]) -> None:
        """Carry out the ``Dismiss`` effects: close those ends and take them out of the session now."""
        for effect in effects:
            if isinstance(effect, routing.Dismiss) and (gone := ends.pop(effect.role, None)) is not None:
                gone.mailbox.close(effect.code, discard=effect.discard)

    async def evict(self, attachment: Attachment, code: CloseCode) -> None:
        if not self._current(attachment):
            return
        if code is CloseCode.TOO_SLOW and attachment.mailbox.closing is None:
            self.counters.count(Drop.TOO_SLOW)
        # Discard what is queued: a reader that does not drain would never reach the close.
        attachment.mailbox.close(code, discard=True)
        self._leave(attachment, clean=False)  # the relay cut it: not an end the host chose

    async def session_count(self) -> int:
        return len(self._sessions)

    async def close_all(self, code: CloseCode) -> None:
        sessions, self._sessions = self._sessions, {}
        for ends in sessions.values():
            for attachment in ends.values():
                attachment.mailbox.close(code)

    def _current(self, attachment: Attachment) -> bool:
        return self._sessions.get(attachment.session_id, {}).get(attachment.role) is attachment

    def _leave(self, attachment: Attachment, clean: bool = True) -> None:
        if not self._current(attachment):
            return  # already gone: evicted, or its session ended with its host
        ends = self._sessions[attachment.session_id]
        outcome = routing.leave(attachment.role, SessionState.of(set(ends)), clean)
        del ends[attachment.role]
        self._apply(ends, outcome.effects)
        if outcome.next is SessionState.ABSENT:
            # Nothing of the session stays at the relay (DESIGN.md rule 8).
            del self._sessions[attachment.session_id]

    def _apply(self, ends: dict[Role, Attachment], effects: tuple[routing.Effect, ...]) -> None:
        for effect in effects:
            if isinstance(effect, routing.Dismiss):
                continue  # carried out by _dismiss, before
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
    """The broker named by ``url``: ``memory`` or ``redis://...``; raises BrokerUnavailable for any other.

    Backends are imported here, lazily, so the memory broker never loads a Redis client.
    """
    if url == "memory":
        return MemoryBroker(counters, limits)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from tether.relay.redis_broker import RedisBroker

        return RedisBroker(url, counters, limits)
    raise BrokerUnavailable(f"unknown broker {url!r}: expected memory or redis://HOST:PORT/DB")

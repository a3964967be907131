"""Brokers: where the relay keeps which connection holds which end of which session.

The Broker interface is what the endpoints use; MemoryBroker keeps everything in this
process. A Redis broker (a later issue) implements the same interface with one pub/sub
channel per session and role and presence as expiring keys, so that many relay
processes can share sessions. Either way nothing outlives the connections: no message
content is stored beyond the bounded mailboxes of live connections.

Calling contract: ``attach`` (raises Refused), then ``forward`` for every frame the
connection sends, then ``detach`` exactly once. The connection reads what is meant for it
from ``attachment.mailbox.get()`` until it returns a Close.
"""

from __future__ import annotations

import abc
import asyncio
import collections
from dataclasses import dataclass

from tether.relay.routing import CloseCode, Counters, Drop, Role, admit, peer_event

MAILBOX_BYTES = 8 * 1024 * 1024  # per connection: what may wait for a slow reader
MAILBOX_FRAMES = 1024
SLOW_TIMEOUT = 10.0  # seconds a sender may wait on a full mailbox before its reader is cut off


@dataclass(frozen=True, slots=True)
class Control:
    """A relay control message, sent to the connection as a text frame."""

    text: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with this code after what was queued before it."""

    code: CloseCode


Item = bytes | Control | Close


class Refused(Exception):
    """attach() refused the connection; ``code`` says why."""

    def __init__(self, code: CloseCode) -> None:
        super().__init__(code.reason)
        self.code = code


class Mailbox:
    """A bounded FIFO of items for one connection (bounded by bytes and by count).

    One reader (the connection's writer task), any number of ``put`` callers. ``put``
    waits while the mailbox is full; Control and Close bypass the bound so the relay can
    always tell a connection what happened. After a Close nothing more is accepted.
    """

    def __init__(self, max_bytes: int = MAILBOX_BYTES, max_frames: int = MAILBOX_FRAMES) -> None:
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self._items: collections.deque[Item] = collections.deque()
        self._bytes = 0
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self.closed = False

    def _full(self, size: int) -> bool:
        return bool(self._items) and (self._bytes + size > self.max_bytes or len(self._items) >= self.max_frames)

    async def put(self, frame: bytes, timeout: float) -> bool:  # noqa: ASYNC109 - the timeout is the rule
        """Queue a frame; False if the mailbox stayed full for ``timeout`` seconds or is closed."""
        try:
            async with asyncio.timeout(timeout):
                while not self.closed and self._full(len(frame)):
                    self._writable.clear()
                    await self._writable.wait()
        except TimeoutError:
            return False
        if self.closed:
            return False
        self._items.append(frame)
        self._bytes += len(frame)
        self._readable.set()
        return True

    def put_nowait(self, item: Control | Close) -> None:
        """Queue a control message or the final Close, regardless of the bound."""
        if self.closed:
            return
        self._items.append(item)
        if isinstance(item, Close):
            self.closed = True
            self._writable.set()  # wake blocked senders so they see the mailbox is closed
        self._readable.set()

    async def get(self) -> Item:
        """The next item, waiting for one."""
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        if isinstance(item, bytes):
            self._bytes -= len(item)
        self._writable.set()
        return item


@dataclass(eq=False)
class Attachment:
    """One connection's hold on one end of a session."""

    session_id: str
    role: Role
    mailbox: Mailbox


class Broker(abc.ABC):
    """Pairs the two ends of sessions and moves frames between them (see module doc)."""

    def __init__(self, counters: Counters | None = None, slow_timeout: float = SLOW_TIMEOUT) -> None:
        self.counters = counters or Counters()
        self.slow_timeout = slow_timeout

    @abc.abstractmethod
    async def attach(self, session_id: str, role: Role) -> Attachment:
        """Take one end of a session; Refused if the routing rules say no."""

    @abc.abstractmethod
    async def forward(self, attachment: Attachment, frame: bytes) -> None:
        """Deliver a frame to the other end of the attachment's session, or count a drop."""

    @abc.abstractmethod
    async def detach(self, attachment: Attachment) -> None:
        """Let go of the end; a leaving host ends the session for its viewer at once."""

    @abc.abstractmethod
    def session_count(self) -> int:
        """Sessions with an attached host (in this process, for the memory broker)."""

    @abc.abstractmethod
    def close_all(self, code: CloseCode) -> None:
        """Close every connection (the relay is stopping)."""


class MemoryBroker(Broker):
    """All routing in this process's memory (the embedded default)."""

    def __init__(self, counters: Counters | None = None, slow_timeout: float = SLOW_TIMEOUT) -> None:
        super().__init__(counters, slow_timeout)
        self._sessions: dict[str, dict[Role, Attachment]] = {}

    async def attach(self, session_id: str, role: Role) -> Attachment:
        ends = self._sessions.get(session_id, {})
        refusal = admit(session_id, role, frozenset(ends))
        if refusal is not None:
            raise Refused(refusal)
        attachment = Attachment(session_id, role, Mailbox())
        self._sessions.setdefault(session_id, {})[role] = attachment
        if role is Role.VIEWER:
            # Both ends learn of each other before any viewer frame can be forwarded:
            # the host resets its sequence numbers on this message (docs/protocol.md 2).
            ends[Role.HOST].mailbox.put_nowait(Control(peer_event(Role.VIEWER, "joined")))
            attachment.mailbox.put_nowait(Control(peer_event(Role.HOST, "joined")))
        return attachment

    async def forward(self, attachment: Attachment, frame: bytes) -> None:
        ends = self._sessions.get(attachment.session_id, {})
        if ends.get(attachment.role) is not attachment:
            return  # this connection was already replaced or ended
        peer = ends.get(attachment.role.peer)
        if peer is None:
            self.counters.count(Drop.NO_PEER)
            return
        delivered = await peer.mailbox.put(frame, self.slow_timeout)
        if not delivered and not peer.mailbox.closed:
            self.counters.count(Drop.TOO_SLOW)
            peer.mailbox.put_nowait(Close(CloseCode.TOO_SLOW))

    async def detach(self, attachment: Attachment) -> None:
        ends = self._sessions.get(attachment.session_id)
        if ends is None or ends.get(attachment.role) is not attachment:
            return
        del ends[attachment.role]
        if attachment.role is Role.HOST:
            # The session dies with its host: nothing of it stays at the relay.
            del self._sessions[attachment.session_id]
            viewer = ends.get(Role.VIEWER)
            if viewer is not None:
                viewer.mailbox.put_nowait(Close(CloseCode.SESSION_ENDED))
        else:
            ends[Role.HOST].mailbox.put_nowait(Control(peer_event(Role.VIEWER, "left")))

    def session_count(self) -> int:
        return len(self._sessions)

    def close_all(self, code: CloseCode) -> None:
        for ends in list(self._sessions.values()):
            for attachment in ends.values():
                attachment.mailbox.put_nowait(Close(code))


def create_broker(url: str, counters: Counters | None = None) -> Broker:
    """A broker by name: ``memory``; others are imported lazily when they exist."""
    if url == "memory":
        return MemoryBroker(counters)
    if url.startswith(("redis://", "rediss://")):
        raise ValueError("the Redis broker is not available in this version; use --broker memory")
    raise ValueError(f"unknown broker {url!r}; use memory")

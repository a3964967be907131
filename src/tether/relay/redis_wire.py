"""The Redis broker's two sockets to Redis, read and written below redis-py: publishing and the subscription.

Publishing: every process publishes through one connection (:class:`Publisher`), in order
and pipelined; the broker counts on that order (redis_broker.py, "Order"). Redis is asked
not to answer (``CLIENT REPLY OFF``). Senders on a process wait when its outgoing publish
queue holds more than ``OUTBOX_BYTES`` (Redis is slower than they are).

The subscription: redis-py connects and subscribes; then its socket is read by a
:class:`Feed`, which hands each message published to this process over as it is read.

Both take over the socket of a connected redis-py connection (its asyncio transport gets a
protocol of the relay's); when the connection is lost, redis-py is told and closes it as it
always does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tether.relay.routing import Counters, Drop
from tether.relay.websocket import joining_writes

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger("tether.relay")

OUTBOX_BYTES = 16 * 1024 * 1024  # published bytes waiting for Redis before senders wait
CLIENT_REPLY_OFF = b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n"


class Publisher:
    """This process's PUBLISHes, queued in order and written through one connection of its own.

    Calling contract: ``run`` is a task for as long as the broker lives. ``enqueue`` queues
    a message and never waits (a caller that must not wait first asks ``behind``);
    ``publish`` waits while the process is behind, then queues. ``flush`` returns when the
    system has taken everything queued. What is lost with a connection is counted as
    ``Drop.NO_PEER`` in ``counters``.
    """

    def __init__(self, pool: aioredis.ConnectionPool, counters: Counters) -> None:
        self._pool = pool
        self._counters = counters
        self._outbox: collections.deque[tuple[bytes, bytes]] = collections.deque()  # (command head, message)
        self._outbox_bytes = 0  # queued here, not yet written to the publishing connection
        self._outbox_changed = asyncio.Event()
        self._link: asyncio.WriteTransport | None = None  # the publishing connection, while it is up
        self._written: collections.deque[int] = collections.deque()  # sizes of PUBLISHes maybe still in its buffer
        self._written_bytes = 0
        self._wrote_this_turn = False
        self._send_scheduled = False

    def enqueue(self, channel: str, message: bytes) -> None:
        """Queue ``PUBLISH channel message``: written now if it is the first of this turn, else at the turn's end."""
        self._outbox.append((_publish_head(channel), message))
        self._outbox_bytes += len(message)
        if self._writable():
            if len(self._outbox) == 1 and not self._wrote_this_turn:
                # The first of this turn of the event loop: at once, no wait for another turn.
                self._send_outbox()
                self._wrote_this_turn = True
                asyncio.get_running_loop().call_soon(self._next_turn)
            elif not self._send_scheduled:
                # The others forwarded in this turn of the event loop go in one write.
                self._send_scheduled = True
                asyncio.get_running_loop().call_soon(self._send_outbox)
        self._outbox_changed.set()

    def _next_turn(self) -> None:
        self._wrote_this_turn = False

    def waiting(self) -> int:
        """Bytes published here and not yet taken by the system: queued, or in the connection's buffer."""
        return self._outbox_bytes + (self._link.get_write_buffer_size() if self._link is not None else 0)

    def behind(self) -> bool:
        """Whether more than ``OUTBOX_BYTES`` wait for Redis: a sender waits (``publish``)."""
        return self.waiting() > OUTBOX_BYTES

    def _writable(self) -> bool:
        """Whether the publishing connection is up."""
        return self._link is not None and not self._link.is_closing()

    def _send_outbox(self) -> None:
        """Write every queued PUBLISH to the publishing connection (which Redis does not answer)."""
        self._send_scheduled = False
        if not self._outbox or not self._writable():
            return
        batch, self._outbox = self._outbox, collections.deque()
        assert self._link is not None
        parts: list[bytes] = []
        for head, message in batch:
            parts += (head, b"$%d\r\n" % len(message), message, b"\r\n")
            self._outbox_bytes -= len(message)
            self._written.append(len(message))
            self._written_bytes += len(message)
        self._link.write(b"".join(parts))
        # Remember only what may still be in the connection's buffer (lost, and counted, if it closes).
        buffered = self._link.get_write_buffer_size()
        while self._written and self._written_bytes - self._written[0] >= buffered:
            self._written_bytes -= self._written.popleft()
        self._outbox_changed.set()

    async def publish(self, channel: str, message: bytes) -> None:
        """Queue ``PUBLISH channel message`` once this process is no longer behind."""
        while self.behind():
            self._outbox_changed.clear()
            await self._outbox_changed.wait()
        self.enqueue(channel, message)

    async def flush(self) -> None:
        if self._link is not None:
            self._link.set_write_buffer_limits(0)  # the relay stops: be told when the buffer is empty
        while self.waiting():
            self._outbox_changed.clear()
            await self._outbox_changed.wait()

    async def run(self) -> None:
        """Publish what is queued, in order, through one connection of its own, pipelined.

        The connection is taken from the pool once and kept (a pipeline object and a pool
        checkout per message cost more than the PUBLISH itself). While it is up, a frame is
        written to it as it is forwarded when Redis is idle, else with the others of the
        same turn of the event loop in one write (``enqueue``). Redis is asked not to answer
        (``CLIENT REPLY OFF``: no answer to write, read and wake for); what waits is what the
        system has not taken yet (``waiting``). This task sends what was queued while there
        was no connection. When the connection is lost, what it still held is lost (as on a
        dropped connection) and another connection is taken.
        """
        pool = self._pool
        while True:
            while not self._outbox:
                self._outbox_changed.clear()
                await self._outbox_changed.wait()
            try:
                link = await pool.get_connection()  # type: ignore[no-untyped-call]
                if not link.is_connected:
                    await link.connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._lost(exc, len(self._outbox))
                self._outbox.clear()
                self._outbox_bytes = 0
                continue
            try:
                self._link, lost = _Replies.install(link, self._outbox_changed.set)
                self._send_outbox()
                await lost
                self._lost(ConnectionError("the publishing connection closed"), len(self._written))
                self._written.clear()
                self._written_bytes = 0
            finally:
                self._link = None
                with contextlib.suppress(Exception):
                    await link.disconnect()  # the connection goes back to the pool closed: it has our protocol
                with contextlib.suppress(Exception):
                    await pool.release(link)

    def _lost(self, exc: Exception, count: int) -> None:
        # Redis went away: what was in flight is lost, as on a dropped connection.
        logger.warning("relay: publishing to Redis failed: %s", type(exc).__name__)
        self._counters.count(Drop.NO_PEER, count)
        self._outbox_changed.set()


try:  # what redis-py's hiredis reader returns when a reply is incomplete
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
except ImportError:  # pragma: no cover - redis is a dependency of tether
    _NOT_ENOUGH_DATA = False


@functools.lru_cache(maxsize=1024)
def _publish_head(channel: str) -> bytes:
    """The start of a ``PUBLISH channel message`` command in RESP, up to the message's length."""
    name = channel.encode()
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n" % (len(name), name)


class _TakenOver(asyncio.Protocol):
    """A redis-py connection's socket read by a protocol of the relay's: ``lost`` is done when the connection
    is lost, and the protocol it replaced is told, so redis-py closes the connection as it always does."""

    def __init__(self, stream: Any, lost: asyncio.Future[None]) -> None:
        self._stream = stream  # the protocol this replaced (asyncio's StreamReaderProtocol)
        self._lost = lost

    def eof_received(self) -> bool:
        return False  # the transport closes itself: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)
        self._stream.connection_lost(exc)


class _Replies(_TakenOver):
    """The publishing connection's socket, taken over: Redis is asked not to answer, and whatever it says is dropped.

    A Redis that refuses ``CLIENT REPLY OFF`` answers every PUBLISH as before: the answers are read and dropped.
    """

    def __init__(self, drained: Callable[[], None], stream: Any, lost: asyncio.Future[None]) -> None:
        super().__init__(stream, lost)
        self._drained = drained

    @classmethod
    def install(
        cls, connection: Any, drained: Callable[[], None]
    ) -> tuple[asyncio.WriteTransport, asyncio.Future[None]]:
        """Take over a connected redis-py connection's socket: its transport, and a future done when it is lost.

        ``drained`` is called when the transport's buffer, once over its high mark, is low again.
        """
        transport = connection._writer.transport
        lost = asyncio.get_running_loop().create_future()
        replies = cls(drained, transport.get_protocol(), lost)
        transport.set_protocol(replies)
        if transport.is_closing():
            replies.connection_lost(None)
        else:
            transport.write(CLIENT_REPLY_OFF)
        return transport, lost

    def data_received(self, data: bytes) -> None:
        pass  # nothing is expected: see the class doc

    def resume_writing(self) -> None:
        self._drained()


class Feed(_TakenOver):
    """The subscription's socket, read here: each message published to this process is handed on as it is read.

    redis-py's ``get_message`` wakes a task per read and builds a dictionary per message;
    the relay needs only the message's bytes. ``install`` takes over the transport of a
    subscribed redis-py ``PubSub`` (its hiredis reader too, with what it holds) and returns
    a future that is done when the connection is lost; the original protocol is told of the
    loss, so redis-py closes the connection as it always does.
    """

    def __init__(self, reader: Any, handle: Callable[[bytes], None], stream: Any, lost: asyncio.Future[None]) -> None:
        super().__init__(stream, lost)
        self._reader = reader  # the connection's hiredis reader
        self._handle = handle

    @classmethod
    def install(cls, pubsub: Any, handle: Callable[[bytes], None]) -> asyncio.Future[None]:
        connection = pubsub.connection
        transport = connection._writer.transport
        lost = asyncio.get_running_loop().create_future()
        feed = cls(connection._parser._reader, handle, transport.get_protocol(), lost)
        transport.set_protocol(feed)
        buffered = connection._reader._buffer  # read from the socket, not yet parsed
        data = bytes(buffered)
        buffered.clear()
        feed.data_received(data)  # and what the reader already holds
        if transport.is_closing():
            feed.connection_lost(None)
        else:
            with contextlib.suppress(Exception):
                transport.resume_reading()  # the stream may have paused it
        return lost

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        # Frames for one viewer in this read go to its socket in one write at the end of it, as
        # frames arriving on one WebSocket do (websocket.FastPath).
        joining_writes(self._deliver)

    def _deliver(self) -> None:
        reader, nothing = self._reader, _NOT_ENOUGH_DATA
        while (reply := reader.gets()) is not nothing:
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                try:
                    self._handle(reply[2])
                except Exception:
                    logger.exception("relay: a message from Redis could not be delivered")

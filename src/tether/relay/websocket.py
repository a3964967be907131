"""The relay's WebSocket protocol: uvicorn's sans-I/O one, with a direct path for frames.

uvicorn's ``websockets-sansio`` protocol hands every message to the app through an
ASGI queue and pauses reading until the app has taken it, and the app sends each
message through the ASGI ``send`` of the other connection from a writer task: two task
switches, two ``epoll_ctl`` calls and a handful of dictionaries per forwarded frame. The
relay forwards frames without looking at them, so once an end is attached
(``app.py``) it installs a :class:`FastPath` on the connection:

- ``receiver``: called with each complete binary message as it is parsed, inside
  ``data_received``. It returns True when it took the frame (forwarded or counted as a
  drop); False sends the frame down the ordinary ASGI path, where the app may wait for
  room. The direct path is used only while the app has nothing of this connection left
  to finish (``unacked == 0``: every message handed to it through the queue has been
  acknowledged with ``processed``), so frames never overtake each other.
- ``send_binary``: writes a binary frame to the transport at once, when nothing else
  is due first (the connection is open and its transport is not paused). False: the
  caller queues the frame as before (the connection's mailbox and writer).

Text messages (credentials, renewals) and closes always take the ASGI path. With no
:class:`FastPath` installed (before attach, or a connection the app never attaches), the
protocol is uvicorn's, unchanged.

Memory: an idle relay connection keeps nothing of its handshake (the request, the
response and their headers are dropped once the connection is open), and its receive
queue and "writable" flag allocate their waiters only when someone waits (asyncio's
Queue and Event hold three and one ``deque`` each from the start, about 2.5 KB).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import OPEN

FAST_PATH = "tether.fast_path"  # the ASGI scope extension that carries the connection's FastPath
WRITE_JOIN_LIMIT = 64 * 1024  # frames up to this size are written with their header in one buffer


T = TypeVar("T")


class Inbox(Generic[T]):
    """What uvicorn's protocol uses of ``asyncio.Queue`` (one reader), without its three deques."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)  # short: reading pauses after each message the app has not taken

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Flag:
    """What uvicorn's protocol uses of ``asyncio.Event`` (``writable``), its waiters made on demand."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


def frame_header(size: int) -> bytes:
    """The header of an unmasked, final binary frame of ``size`` bytes (RFC 6455 section 5.2)."""
    if size < 126:
        return bytes((0x82, size))
    if size < 0x10000:
        return struct.pack("!BBH", 0x82, 126, size)
    return struct.pack("!BBQ", 0x82, 127, size)


class FastPath:
    """The direct path of one connection (see the module doc); ``app.py`` sets ``receiver``."""

    __slots__ = ("_protocol", "receiver", "unacked")

    def __init__(self, protocol: RelayWebSocketProtocol) -> None:
        self._protocol = protocol
        self.receiver: Callable[[bytes], bool] | None = None
        self.unacked = 0  # messages handed to the app through the queue and not yet processed

    def install(self, receiver: Callable[[bytes], bool]) -> None:
        """Take binary messages directly from now on; what is already queued goes first."""
        self.unacked = self._protocol.queue.qsize()
        self.receiver = receiver

    def processed(self) -> None:
        """The app has finished with one message it received through the queue."""
        if self.unacked:
            self.unacked -= 1

    def send_binary(self, data: bytes) -> bool:
        """Write ``data`` as a binary frame now: True; False when it must wait its turn (queue it)."""
        protocol = self._protocol
        if protocol.close_sent or protocol.disconnected or not protocol.writable.is_set():
            return False
        if protocol.conn.state is not OPEN:
            return False
        header = frame_header(len(data))
        if len(data) <= WRITE_JOIN_LIMIT:
            protocol.transport.write(header + data)
        else:  # a large frame: no copy of it just to put its header in front
            protocol.transport.write(header)
            protocol.transport.write(data)
        return True


class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with the relay's :class:`FastPath` (module doc)."""

    fast: FastPath | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            self.fast = FastPath(self)
            self.scope["extensions"][FAST_PATH] = self.fast  # type: ignore[assignment]

    def handle_bytes(self, event: Frame) -> None:
        fast = self.fast
        if event.fin and fast is not None and fast.receiver is not None and not fast.unacked and not self.close_sent:
            try:
                if fast.receiver(event.data):  # type: ignore[arg-type]
                    return
            except Exception:
                # A bug: the app's own path takes the frame, and counts and closes if it fails there too.
                self.logger.exception("relay: the direct path failed for a frame")
        super().handle_bytes(event)

    def send_receive_event_to_app(self) -> None:
        if self.fast is not None and self.fast.receiver is not None and not self.close_sent:
            self.fast.unacked += 1
        super().send_receive_event_to_app()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Open: nothing of the handshake is needed any more (the app has its scope).
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]

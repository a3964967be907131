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

Memory, per connection, which is what an idle relay holds (issue 13: 10,000 sessions):

- nothing of the handshake once the connection is open: the request, the response and
  their headers are dropped, and the frame parser is started afresh so that the
  handshake's parser (which keeps the request in its frame) goes too; once attached, the
  scope keeps only its type and path (``FastPath.install``), and the relay reads request
  headers and query from the scope (``header``, ``query_value``) so that no parsed copy
  stays on the connection's ``WebSocket``;
- no Starlette middleware on the stack: the connection's task runs the endpoint of the
  app's matching WebSocket route directly (the relay adds no middleware and its endpoints
  handle their own errors, so Starlette's error and exception layers would only hold
  about 4 KB of suspended frames per connection). Any other app runs whole;
- its receive
queue and "writable" flag allocate their waiters only when someone waits (asyncio's
Queue and Event hold three and one ``deque`` each from the start, about 2.5 KB).
"""

from __future__ import annotations

import copy
import inspect
import struct
import threading
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.routing import Match, Route, WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import OPEN, Protocol

from tether.relay.waits import Flag, Inbox

FAST_PATH = "tether.fast_path"  # the ASGI scope extension that carries the connection's FastPath
WRITE_JOIN_LIMIT = 64 * 1024  # frames up to this size are written with their header in one buffer


def route_endpoint(app: Any, scope: Any) -> Any | None:
    """The endpoint of the Starlette WebSocket route matching ``scope``, as an ASGI app without middleware.

    None when ``app`` is not a plain Starlette app (behind uvicorn's proxy-headers
    middleware at most, which is kept), has middleware of its own, or has no function
    endpoint for this path: then the whole app runs, as uvicorn would run it. The route's
    path parameters go into ``scope`` as Starlette's router puts them.
    """
    proxy = app if isinstance(app, ProxyHeadersMiddleware) else None
    starlette = proxy.app if proxy is not None else app
    if not isinstance(starlette, Starlette) or starlette.user_middleware:
        return None
    found = _matching_endpoint(starlette, scope)
    if found is None:
        return None
    scope.update(found, app=starlette, router=starlette.router)
    if proxy is None:
        return _run_endpoint
    lean = copy.copy(proxy)
    lean.app = _run_endpoint
    return lean


def _run_endpoint(scope: Any, receive: Any, send: Any) -> Awaitable[None]:
    """The matched route's endpoint (``scope["endpoint"]``, as Starlette's router sets it), on its WebSocket.

    Not a coroutine function: the endpoint's own coroutine is what the connection's task
    awaits, with no frame of this one suspended above it.
    """
    return scope["endpoint"](WebSocket(scope, receive, send))  # type: ignore[no-any-return]


def _matching_endpoint(starlette: Starlette, scope: Any) -> Any | None:
    """The child scope of the matching route (with its ``endpoint``), or None."""
    for route in starlette.router.routes:
        if not isinstance(route, (Route, WebSocketRoute)):
            return None  # a mount or a host: leave the routing to Starlette
        if isinstance(route, WebSocketRoute) and inspect.iscoroutinefunction(route.endpoint):
            match, child = route.matches(scope)
            if match is Match.FULL:
                return child
    return None


def header(websocket: WebSocket, name: bytes) -> str | None:
    """The value of request header ``name`` (lower case), read from the scope.

    Not Starlette's ``websocket.headers``, which keeps a parsed copy on the connection's
    ``WebSocket`` for its whole life (memory per idle connection).
    """
    for key, value in websocket.scope["headers"]:
        if key.lower() == name:  # uvicorn's sans-I/O protocol passes names as the client wrote them
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def query_value(websocket: WebSocket, name: str) -> str | None:
    """The first value of query parameter ``name``, read from the scope (not kept, as ``header``)."""
    values = urllib.parse.parse_qs(websocket.scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


def frame_header(size: int) -> bytes:
    """The header of an unmasked, final binary frame of ``size`` bytes (RFC 6455 section 5.2)."""
    if size < 126:
        return bytes((0x82, size))
    if size < 0x10000:
        return struct.pack("!BBH", 0x82, 126, size)
    return struct.pack("!BBQ", 0x82, 127, size)


class FastPath:
    """The direct path of one connection (see the module doc); ``app.py`` sets ``receiver``.

    Small frames forwarded while one connection's incoming data is handled (one read from
    its socket may hold many frames) are written to each peer's socket in one ``write`` at
    the end of it (``RelayWebSocketProtocol.handle_events``), still within the same call,
    so nothing waits for a later turn of the event loop: a host that sends many frames at
    once costs its viewer's socket one system call, not one per frame.
    """

    __slots__ = ("_pending", "_protocol", "receiver", "unacked")

    def __init__(self, protocol: RelayWebSocketProtocol) -> None:
        self._protocol = protocol
        self.receiver: Callable[[bytes], bool] | None = None
        self.unacked = 0  # messages handed to the app through the queue and not yet processed
        self._pending: list[bytes] | None = None  # frames written this turn, not yet on the socket

    def install(self, receiver: Callable[[bytes], bool]) -> None:
        """Take binary messages directly from now on; what is already queued goes first.

        The app is done with the handshake by then: the connection's scope keeps only its
        ``type`` and ``path`` (the request's headers, addresses, path parameters and
        extensions are about 1.5 KB a connection). Starlette's ``WebSocket`` reads nothing
        else of it to send, receive and close.
        """
        self.unacked = self._protocol.queue.qsize()
        self.receiver = receiver
        scope: dict[str, Any] = self._protocol.scope  # type: ignore[assignment]
        kept = {"type": scope["type"], "path": scope.get("path", "")}
        scope.clear()  # a cleared dict lets go of its table too: what is put back takes a small one
        scope.update(kept)
        self._protocol.client = None  # the same tuple as the scope's "client", which is gone
        self._protocol.server = None

    def receive(self) -> Awaitable[Any]:
        """The connection's next ASGI message, as Starlette's ``WebSocket.receive`` would return it once connected.

        Without Starlette's coroutine suspended above the wait (memory per idle connection):
        this protocol hands out only ``websocket.receive`` and ``websocket.disconnect``.
        """
        return self._protocol.receive()

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
        batch: list[FastPath] | None = getattr(_handling, "batch", None)
        if len(data) <= WRITE_JOIN_LIMIT and batch is not None:
            if self._pending is None:
                self._pending = []
                batch.append(self)
            self._pending += (header, data)
        elif len(data) <= WRITE_JOIN_LIMIT:
            protocol.transport.write(header + data)
        else:  # a large frame: no copy of it just to put its header in front
            self.flush()
            protocol.transport.write(header)
            protocol.transport.write(data)
        return True

    def flush(self) -> None:
        """Write out the frames held back (nothing, if the connection closed meanwhile)."""
        pending, self._pending = self._pending, None
        if pending and not self._protocol.transport.is_closing():
            self._protocol.transport.write(b"".join(pending))


# The scope's "asgi" dicts, by version: shared by every connection (read-only, per the ASGI spec).
_ASGI: dict[tuple[str, str], Any] = {}

T = TypeVar("T")

# The connections whose frames wait for the end of the data being handled now (FastPath's
# doc). Per thread: relays in several threads each have their own event loop.
_handling = threading.local()


def joining_writes(handle: Callable[[], T]) -> T:
    """Run ``handle``; the small frames it writes to each connection go out in one write at its end."""
    outer = getattr(_handling, "batch", None)
    batch: list[FastPath] = []
    _handling.batch = batch
    try:
        return handle()
    finally:
        _handling.batch = outer
        for fast in batch:
            fast.flush()


class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with the relay's :class:`FastPath` (module doc)."""

    # uvicorn's protocol sets 37 attributes: past the 30 keys a shared instance dict may
    # hold, so each connection had a dict of its own (about 1.5 KB). As slots they take 8
    # bytes each; an attribute a later uvicorn adds still lands in the (then small) dict.
    __slots__ = ("app", "app_state", "asgi_version", "client", "close_sent", "close_timeout", "close_timer",
                 "config", "conn", "connections", "curr_msg_data_type", "default_headers", "disconnected", "fast",
                 "frames", "handshake_complete", "handshake_initiated", "initial_response", "last_ping_rtt",
                 "logger", "loop", "pending_ping_payload", "ping_interval", "ping_sent_at", "ping_timeout",
                 "ping_timer", "pong_timer", "queue", "read_paused", "request", "response", "root_path", "scheme",
                 "scope", "server", "tasks", "transport", "writable")  # fmt: skip

    def handle_events(self) -> None:
        joining_writes(super().handle_events)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.fast: FastPath | None = None
        super().__init__(*args, **kwargs)
        self.queue = Inbox(self._taken)  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)  # creates the task that runs self.app: it has not started yet
        if self.response.status_code != 101:
            return
        self.fast = FastPath(self)
        self.scope["extensions"][FAST_PATH] = self.fast  # type: ignore[assignment]
        # The same for every connection: one dict shared, not one each (about 200 B).
        asgi = self.scope["asgi"]
        self.scope["asgi"] = _ASGI.setdefault((asgi["version"], asgi.get("spec_version", "")), asgi)
        self.app = route_endpoint(self.app, self.scope) or self.app
        conn = self.conn
        if not conn.reader.buffer:
            # Nothing of a frame read yet: a frame parser of its own, without the handshake's frame.
            conn.parser = Protocol.parse(conn)
            next(conn.parser)

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

    def receive(self) -> Awaitable[Any]:  # type: ignore[override]
        """uvicorn's ``receive``, but the queue's own coroutine: no frame of this one suspended above it.

        What uvicorn does after each message taken (resume reading once the queue is empty)
        is ``_taken``, which the queue calls.
        """
        return self.queue.get()

    def _taken(self) -> None:
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            self.transport.resume_reading()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Open: nothing of the handshake is needed any more (the app has its scope).
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]

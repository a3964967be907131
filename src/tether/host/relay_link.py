"""RelayLink: the host's outbound WebSocket to the relay, mirroring one session.

The host only ever dials out. The link registers the session at
``/v1/host/{session_id}``, turns the session's messages into frames (Channel) for the
viewer, and turns the viewer's frames into calls on the session. Text frames are the
relay's own control messages (peer joined/left, errors); binary frames are the viewer's,
and the relay never looks inside them.

Calling contract: ``await connect()`` once (RelayUnreachable if it fails), ``deliver``
from the session for every message, ``await close()`` once at the end; ``lost`` is set
with a reason if the relay connection drops on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection

from tether.errors import RelayUnreachable, RemoteProtocolError
from tether.protocol.channel import Channel
from tether.protocol.messages import (
    Authenticate,
    Cancel,
    Decide,
    Ended,
    Hello,
    Message,
    Prompt,
    SetMode,
    SetOption,
    Snapshot,
)

if TYPE_CHECKING:
    from tether.host.session import HostSession

log = logging.getLogger(__name__)

MAX_FRAME = 1024 * 1024 + 64
FLUSH_TIMEOUT = 1.0  # seconds to get "ended" out before closing


def new_session_id() -> str:
    """16 random bytes, base64url: the session's name at the relay."""
    return secrets.token_urlsafe(16)


def _websocket_url(relay: str, path: str) -> str:
    parts = urlsplit(relay)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise RelayUnreachable(f"the relay URL {relay!r} is not an http(s):// or ws(s):// URL")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))


def viewer_url(relay: str, session_id: str) -> str:
    """The session URL a browser opens (secret material will go in the fragment)."""
    parts = urlsplit(relay)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + f"/s/{session_id}", "", ""))


class RelayLink:
    """See module doc."""

    def __init__(self, session: HostSession, relay: str, session_id: str | None = None) -> None:
        self.session = session
        self.relay = relay
        self.session_id = session_id or new_session_id()
        self.url = viewer_url(relay, self.session_id)
        self.channel = Channel()
        self.viewer_ready = False
        self.drops = 0
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._ws: ClientConnection | None = None
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closing = False

    async def connect(self) -> None:
        """Register the session at the relay."""
        target = _websocket_url(self.relay, f"/v1/host/{self.session_id}")
        try:
            # permessage-deflate off: it cut forwarding throughput 6-20x when measured.
            self._ws = await websockets.connect(target, compression=None, max_size=MAX_FRAME, open_timeout=10)
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise RelayUnreachable(f"cannot reach the relay at {self.relay}: {exc}") from None
        self._tasks = {asyncio.create_task(self._read()), asyncio.create_task(self._write())}

    def deliver(self, message: Message) -> None:
        """Queue a session message for the viewer (dropped while no viewer is ready)."""
        if self.viewer_ready or isinstance(message, Ended):
            self._outbox.put_nowait(message)

    async def _write(self) -> None:
        assert self._ws is not None
        while True:
            message = await self._outbox.get()
            try:
                for frame in self.channel.send(message):
                    await self._ws.send(frame)
            except websockets.ConnectionClosed:
                return
            finally:
                self._outbox.task_done()

    async def _read(self) -> None:
        assert self._ws is not None
        reason = "the relay closed the connection"
        try:
            async for data in self._ws:
                if isinstance(data, str):
                    self._control(data)
                else:
                    self._frame(data)
        except websockets.ConnectionClosed as exc:
            reason = f"the relay connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
        if not self._closing and not self.lost.done():
            self.lost.set_result(reason)

    def _control(self, text: str) -> None:
        try:
            control = json.loads(text)
        except ValueError:
            log.warning("relay sent a malformed control message")
            return
        if control.get("type") == "peer" and control.get("role") == "viewer":
            # Each viewer connection starts new sequence spaces; nothing queued for the
            # previous viewer may reach the new one.
            self.viewer_ready = False
            self.channel.reset()
            while not self._outbox.empty():
                self._outbox.get_nowait()
                self._outbox.task_done()
        elif control.get("type") == "error":
            log.warning("relay refused a frame: %s", control.get("detail") or control.get("reason"))

    def _frame(self, data: bytes) -> None:
        try:
            message = self.channel.receive(data)
        except RemoteProtocolError as exc:
            self.drops += 1
            log.warning("dropped a frame from the viewer: %s", exc)
            return
        session = self.session
        match message:
            case Hello():
                self.viewer_ready = True
                entries = session.transcript.snapshot()
                self._outbox.put_nowait(Snapshot(session=dict(session.info), entries=entries, running=session.running))
            case Prompt(text=text):
                session.submit_prompt(text)
            case Decide(approval_id=approval_id, option_id=option_id):
                session.decide(approval_id, option_id, by="viewer")
            case Cancel():
                self._spawn(session.cancel())
            case SetMode(mode_id=mode_id):
                self._spawn(session.set_mode(mode_id))
            case SetOption(option_id=option_id, value=value):
                self._spawn(session.set_option(option_id, value))
            case Authenticate(method_id=method_id):
                self._spawn(session.authenticate(method_id))
            case _:
                pass  # unknown kinds and host-to-viewer kinds are ignored

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Flush what is queued (the ``ended`` message), then close the connection."""
        self._closing = True
        if self._ws is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), FLUSH_TIMEOUT)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(code=1000, reason="session ended"), FLUSH_TIMEOUT)

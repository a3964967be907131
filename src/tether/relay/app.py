"""The relay's ASGI app: two WebSocket endpoints, the viewer's files, a health check.

Endpoints only pump (docs/protocol.md section 1). A binary frame in from a connection
goes to ``broker.forward`` unparsed; what the broker queued for the connection goes out.
Routing comes from the connection's URL path, never from a frame's content. Every bad
case ends in a close code or an error message, counted by reason; an exception that
escapes this reasoning is a bug, logged, counted as ``internal`` and closed 1011 without
touching any other connection.

A connection is accepted before a refusal is sent so that browsers see the close code
(a refused handshake shows to a page only as 1006).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tether.errors import Refused
from tether.relay.broker import Attachment, Broker, QueueLimits, create_broker
from tether.relay.config import RelayConfig
from tether.relay.routing import CloseCode, Counters, Drop, Role, error_message

logger = logging.getLogger("tether.relay")

# The viewer page: no third-party origins, no framing, no referrer (the URL is a secret).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}

WRITER_GRACE = 1.0  # seconds a connection closed by the relay gets to send its close frame


@dataclass(eq=False)
class RelayState:
    """What the endpoints of one relay app share: its limits, broker and counters."""

    max_frame_bytes: int
    broker: Broker
    static: Traversable
    active: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def counters(self) -> Counters:
        """Drops and refusals by reason (the broker's, so both count in one place)."""
        return self.broker.counters

    async def shutdown(self, code: CloseCode, grace: float) -> None:
        """Close every connection with ``code`` and wait up to ``grace`` seconds for the endpoints to end."""
        await self.broker.close_all(code)
        if self.active:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.idle.wait()


def relay_state(app: Starlette) -> RelayState:
    """The state of an app made by :func:`create_app`."""
    state = app.state.relay
    assert isinstance(state, RelayState), "not a relay app"
    return state


def create_app(config: RelayConfig, broker: Broker | None = None) -> Starlette:
    """The relay app for ``config``; ``broker`` defaults to the one ``config.broker`` names.

    Raises BrokerUnavailable for a broker this version cannot run. The app keeps no state
    outside its broker; :func:`relay_state` reaches it (the server uses it on shutdown).
    """
    if broker is None:
        limits = QueueLimits(config.queue_bytes, config.queue_frames, config.slow_timeout)
        broker = create_broker(config.broker, Counters(), limits)
    app = Starlette(
        routes=[
            WebSocketRoute("/v1/host/{session_id}", _host_endpoint),
            WebSocketRoute("/v1/viewer/{session_id}", _viewer_endpoint),
            Route("/s/{session_id}", _viewer_page),
            Route("/assets/{file}", _asset),
            Route("/healthz", _healthz),
        ]
    )
    app.state.relay = RelayState(config.max_frame_bytes, broker, resources.files("tether.viewer") / "static")
    return app


async def _host_endpoint(websocket: WebSocket) -> None:
    await _endpoint(websocket, Role.HOST)


async def _viewer_endpoint(websocket: WebSocket) -> None:
    await _endpoint(websocket, Role.VIEWER)


async def _endpoint(websocket: WebSocket, role: Role) -> None:
    relay = relay_state(websocket.app)
    relay.active += 1
    relay.idle.clear()
    try:
        await _connection(websocket, role, relay)
    except (WebSocketDisconnect, OSError):
        pass  # the client went away mid-send; the broker has been told in _connection
    except Exception:
        # A bug, not bad input: keep it to this connection, make it visible, close cleanly.
        logger.exception("relay endpoint failed (%s %s)", role, websocket.url.path)
        relay.counters.count(Drop.INTERNAL)
        with contextlib.suppress(Exception):
            await websocket.close(CloseCode.INTERNAL_ERROR, CloseCode.INTERNAL_ERROR.reason)
    finally:
        relay.active -= 1
        if not relay.active:
            relay.idle.set()


async def _connection(websocket: WebSocket, role: Role, relay: RelayState) -> None:
    """One connection from accept to close: attach, pump both ways, detach."""
    await websocket.accept()
    try:
        attachment = await relay.broker.attach(websocket.path_params["session_id"], role)
    except Refused as refused:
        relay.counters.count(refused.drop)
        await websocket.close(refused.code, refused.code.reason)
        return
    writer = asyncio.create_task(_write(websocket, attachment))
    try:
        await _read(websocket, attachment, relay)
    finally:
        await relay.broker.detach(attachment)
        if attachment.mailbox.closing is not None:
            # The relay closed this connection (oversized, too slow, session ended,
            # shutdown): let the writer send the close frame, within a bound.
            await asyncio.wait({writer}, timeout=WRITER_GRACE)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError):
            await writer


async def _read(websocket: WebSocket, attachment: Attachment, relay: RelayState) -> None:
    """Forward the connection's binary frames until it disconnects or the relay closes it."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            # The WebSocket layer closes on its own for a frame over its size limit
            # (uvicorn's ws_max_size) or a text frame that is not UTF-8: count those here.
            code = message.get("code")
            if code == CloseCode.FRAME_TOO_LARGE and attachment.mailbox.closing is None:
                relay.counters.count(Drop.OVERSIZED)
            elif code == 1007:
                relay.counters.count(Drop.MALFORMED)
            return
        data = message.get("bytes")
        if data is not None:
            if len(data) > relay.max_frame_bytes:
                # Only reached when the server's own limit is looser than the config's.
                relay.counters.count(Drop.OVERSIZED)
                await relay.broker.evict(attachment, CloseCode.FRAME_TOO_LARGE)
                return
            await relay.broker.forward(attachment, data)
        else:
            # Version 1 defines no endpoint-to-relay messages: answer, count, keep the connection.
            relay.counters.count(Drop.MALFORMED)
            reply = error_message(Drop.MALFORMED, "the relay accepts only binary frames")
            if not attachment.mailbox.push_control(reply):
                await relay.broker.evict(attachment, CloseCode.TOO_SLOW)


async def _write(websocket: WebSocket, attachment: Attachment) -> None:
    """Send what the broker queued for this connection, then close with the code it ends with."""
    mailbox = attachment.mailbox
    while True:
        item = await mailbox.get()
        if isinstance(item, bytes):
            await websocket.send_bytes(item)
        elif isinstance(item, str):
            await websocket.send_text(item)
        else:
            await websocket.close(item, item.reason)
            return


async def _viewer_page(request: Request) -> Response:
    """The viewer app; it reads the session id from its own path."""
    page = relay_state(request.app).static / "index.html"
    if not page.is_file():
        return PlainTextResponse("the viewer is not installed", status_code=404)
    return HTMLResponse(page.read_text(encoding="utf-8"), headers=PAGE_HEADERS)


async def _asset(request: Request) -> Response:
    """One of the viewer's static files, by plain file name (no folders, no dot files)."""
    name: str = request.path_params["file"]
    resource = relay_state(request.app).static / name
    if name.startswith(".") or "/" in name or "\\" in name or not resource.is_file():
        return PlainTextResponse("not found", status_code=404)
    suffix = name[name.rfind(".") :] if "." in name else ""
    media_type = ASSET_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(resource.read_bytes(), media_type=media_type, headers=ASSET_HEADERS)


async def _healthz(request: Request) -> Response:
    """``{"ok": true, "sessions": N, "drops": {reason: count}}``."""
    relay = relay_state(request.app)
    sessions = await relay.broker.session_count()
    return JSONResponse({"ok": True, "sessions": sessions, "drops": relay.counters.snapshot()})

"""The relay's ASGI app: two WebSocket endpoints, the viewer's files, a health check.

Endpoints only pump: frames in from a connection go to ``broker.forward`` unparsed;
items in the connection's mailbox go out. Every refusal is a clean close with a code
from routing.CloseCode, counted by reason. The WebSocket is accepted before a refusal
is sent so that browsers see the close code (a refused handshake shows only as 1006).
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from tether.relay.broker import Broker, Close, Control, Refused
from tether.relay.routing import REFUSAL_DROPS, CloseCode, Drop, Role, error_event

STATIC = resources.files("tether.viewer") / "static"

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


async def _pump_out(websocket: WebSocket, broker: Broker, attachment: Any) -> None:
    """Send what the mailbox holds until a Close comes out of it."""
    while True:
        item = await attachment.mailbox.get()
        if isinstance(item, bytes):
            await websocket.send_bytes(item)
        elif isinstance(item, Control):
            await websocket.send_text(item.text)
        elif isinstance(item, Close):
            await websocket.close(code=item.code, reason=item.code.reason)
            return


async def _endpoint(websocket: WebSocket, role: Role) -> None:
    broker: Broker = websocket.app.state.broker
    session_id = websocket.path_params["session_id"]
    try:
        attachment = await broker.attach(session_id, role)
    except Refused as refused:
        broker.counters.count(REFUSAL_DROPS[refused.code])
        await websocket.accept()
        await websocket.close(code=refused.code, reason=refused.code.reason)
        return
    writer: asyncio.Task[None] | None = None
    try:
        await websocket.accept()
        writer = asyncio.create_task(_pump_out(websocket, broker, attachment))
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                if message.get("code") == CloseCode.FRAME_TOO_LARGE:
                    broker.counters.count(Drop.OVERSIZED)
                break
            data = message.get("bytes")
            if data is not None:
                await broker.forward(attachment, data)
            else:
                broker.counters.count(Drop.MALFORMED)
                attachment.mailbox.put_nowait(Control(error_event(Drop.MALFORMED, "text frames are not accepted")))
            if writer.done():
                break  # the relay closed this connection (session ended, too slow)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the peer went away mid-send; detaching below is all there is to do
    finally:
        await broker.detach(attachment)
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer


async def host_endpoint(websocket: WebSocket) -> None:
    await _endpoint(websocket, Role.HOST)


async def viewer_endpoint(websocket: WebSocket) -> None:
    await _endpoint(websocket, Role.VIEWER)


async def viewer_page(request: Request) -> Response:
    """The viewer app; it reads the session id from its own path."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers=PAGE_HEADERS)


async def healthz(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    return JSONResponse({"ok": True, "sessions": broker.session_count(), "drops": broker.counters.snapshot()})


def create_app(broker: Broker) -> Starlette:
    """The relay app around ``broker``."""
    app = Starlette(
        routes=[
            WebSocketRoute("/v1/host/{session_id}", host_endpoint),
            WebSocketRoute("/v1/viewer/{session_id}", viewer_endpoint),
            Route("/s/{session_id}", viewer_page),
            Route("/healthz", healthz),
            Mount("/assets", app=StaticFiles(packages=[("tether.viewer", "static")]), name="assets"),
        ]
    )
    app.state.broker = broker
    return app

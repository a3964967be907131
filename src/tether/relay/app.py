"""The relay's ASGI app: two WebSocket endpoints, the viewer's files, a health check, the operator's figures.

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
import functools
import gzip
import hmac
import json
import logging
import mimetypes
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tether.auth.keys import KeySet
from tether.auth.tokens import Claims, Purpose
from tether.errors import Refused
from tether.relay import gate, origin, routing
from tether.relay.accounts import AccountStore
from tether.relay.admission import Admission, coming_back
from tether.relay.broker import Attachment, Broker, Item, Mailbox, QueueLimits, create_broker
from tether.relay.config import SESSIONS_PER_ADDRESS, RelayConfig
from tether.relay.ledger import Ledger
from tether.relay.metrics import Figures, RelayMetrics, wants_prometheus
from tether.relay.routing import CloseCode, Counters, Drop, Role, deliberate, error_message, valid_session_id
from tether.relay.waits import Deadlines
from tether.relay.websocket import FAST_PATH, FastPath, header, joining_writes, query_value

logger = logging.getLogger("tether.relay")

# The viewer page: no third-party origins, no framing, no referrer (the URL is a secret).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
PAGE_TYPES = {"text/html", "image/svg+xml"}

WRITER_GRACE = 1.0  # seconds a connection closed by the relay gets to send its close frame


@dataclass(eq=False)
class RelayState:
    """What the endpoints of one relay app share: its limits, broker and counters."""

    max_frame_bytes: int
    broker: Broker
    static: Traversable
    admission: Admission
    store: AccountStore | None = None
    clock: Callable[[], float] = time.time
    join_timeout: float = 10.0
    public_origin: str = ""
    refusals: Counter[str] = field(default_factory=Counter)  # credential refusals by reason
    active: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    sessions_per_address: int = SESSIONS_PER_ADDRESS
    by_address: Counter[str] = field(default_factory=Counter)  # host ends held per client address
    operator_token: str | None = None  # reads /metrics
    metrics: RelayMetrics = field(default_factory=RelayMetrics)  # frames forwarded, forwarding latency
    # When each attached end's routing credential lapses unless it renews (docs/protocol.md, "Credentials").
    deadlines: Deadlines[Attachment] = field(init=False)
    _lapsing: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.deadlines = Deadlines(self._lapsed, self.clock)

    def _lapsed(self, attachment: Attachment) -> None:
        """Not renewed in time: the end is closed 4401, and ``_read`` ends when its connection does."""
        self.refusals["expired"] += 1
        self.counters.count(Drop.UNAUTHORIZED)
        task = asyncio.ensure_future(self.broker.evict(attachment, CloseCode.UNAUTHORIZED))
        self._lapsing.add(task)
        task.add_done_callback(self._lapsing.discard)

    @property
    def ledger(self) -> Ledger:
        """Where the credential state lives: this process (memory broker) or shared (Redis)."""
        return self.broker.ledger

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


def create_app(
    config: RelayConfig,
    broker: Broker | None = None,
    *,
    keys: KeySet | None = None,
    store: AccountStore | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The relay app for ``config``; ``broker`` defaults to the one ``config.broker`` names.

    ``keys`` sign and verify credentials (default: ``config.keys_file``, else fresh keys
    for this process); ``store`` is the account store (default: ``config.db``, if any).
    Raises BrokerUnavailable for a broker this version cannot run, StoreUnavailable for an
    account store it cannot open. The app keeps no state outside its broker, its
    admission and its store; :func:`relay_state` reaches them.
    """
    if broker is None:
        limits = QueueLimits(config.queue_bytes, config.queue_frames, config.slow_timeout, config.total_queue_bytes)
        broker = create_broker(config.broker, Counters(), limits)
    app = Starlette(
        routes=[
            # Partials, not wrappers: no coroutine frame of its own per connection (issue 13).
            WebSocketRoute("/v1/host/{session_id}", functools.partial(_endpoint, role=Role.HOST), name="host"),
            WebSocketRoute("/v1/viewer/{session_id}", functools.partial(_endpoint, role=Role.VIEWER), name="viewer"),
            Route("/s/{session_id}", _viewer_page),
            Route("/assets/{file}", _asset),
            Route("/healthz", _healthz),
            Route("/metrics", _metrics),
            Route("/readyz", _readyz),
            Route("/v1/login", gate.login, methods=["POST"]),
            Route("/v1/initiate", gate.initiate, methods=["POST"]),
            Route("/v1/logout", gate.logout, methods=["POST"]),
        ]
    )
    if keys is None:
        keys = load_keys(config.keys_file, clock())
    if store is None and config.db:
        store = AccountStore(config.db)
        store.migrate()
    admission = Admission(keys)
    admission.lifetimes[Purpose.ROUTING] = config.routing_lifetime
    public = urlsplit(config.public_url) if config.public_url else None
    app.state.relay = RelayState(
        config.max_frame_bytes, broker, resources.files("tether.viewer") / "static", admission, store, clock,
        config.join_timeout, f"{public.scheme}://{public.netloc}" if public else "",
    )  # fmt: skip
    app.state.relay.sessions_per_address = config.sessions_per_address
    app.state.relay.operator_token = config.operator_token
    return app


async def _endpoint(websocket: WebSocket, role: Role) -> None:
    relay = relay_state(websocket.app)
    relay.active += 1
    relay.idle.clear()
    # Sessions per client address (the peer, or what a trusted proxy says): a host end
    # counts from before its credential is checked, so a flood of attempts is bounded too.
    address = (websocket.client.host if websocket.client else "") if role is Role.HOST else None
    try:
        if not origin.allowed(header(websocket, b"origin"), header(websocket, b"host"), relay.public_origin):
            # A page of another site: refused before anything is read, and not accepted
            # first (the page learns nothing but a failed handshake: 403).
            relay.counters.count(Drop.BAD_ORIGIN)
            logger.info("refused", extra={"event": "refused", "role": str(role), "reason": str(Drop.BAD_ORIGIN)})
            await websocket.close(CloseCode.UNAUTHORIZED)
            return
        if address is not None and relay.by_address[address] >= relay.sessions_per_address:
            relay.counters.count(Drop.TOO_MANY_SESSIONS)
            await websocket.accept()
            await websocket.close(CloseCode.TOO_MANY_SESSIONS, CloseCode.TOO_MANY_SESSIONS.reason)
            return
        if address is not None:
            relay.by_address[address] += 1
        try:
            attached = await _connection(websocket, role, relay)
            if attached is not None:
                # Awaited here, not from _connection: one suspended frame fewer per idle connection.
                await _read(websocket, role, relay, *attached)
        finally:
            if address is not None:
                relay.by_address[address] -= 1
                if not relay.by_address[address]:
                    del relay.by_address[address]  # nothing of a client stays after its sessions
    except (WebSocketDisconnect, OSError):
        pass  # the client went away mid-send; the broker has been told in _read
    except Exception:
        # A bug, not bad input: keep it to this connection, make it visible, close cleanly.
        logger.exception("relay endpoint failed (%s %s)", role, websocket.scope.get("path"))
        relay.counters.count(Drop.INTERNAL)
        with contextlib.suppress(Exception):
            await websocket.close(CloseCode.INTERNAL_ERROR, CloseCode.INTERNAL_ERROR.reason)
    finally:
        relay.active -= 1
        if not relay.active:
            relay.idle.set()


async def _connection(websocket: WebSocket, role: Role, relay: RelayState) -> tuple[Attachment, Claims] | None:
    """One connection from accept to attached: credential, attach, credentials sent; None if refused (and closed).

    Then ``_read`` pumps both ways and detaches.
    """
    await websocket.accept()
    session = websocket.path_params["session_id"]
    claims = None
    if valid_session_id(session):
        # No slot without a credential: a connection that cannot present one squats nothing.
        presented = await gate.presented(websocket, str(role), relay)
        claims = await gate.check(relay, str(role), presented, session, gate.resumed(websocket, str(role)))
        if claims is None:
            relay.counters.count(Drop.UNAUTHORIZED)
            await websocket.close(CloseCode.UNAUTHORIZED, CloseCode.UNAUTHORIZED.reason)
            return None
    try:
        # A viewer may ask to take over the seat (`?takeover=1`); the host decides whether it sees anything.
        take_over = role is Role.VIEWER and query_value(websocket, "takeover") == "1"
        # A host coming back with its own credential replaces its old connection, if that still hangs on.
        returning = role is Role.HOST and claims is not None and coming_back(claims)
        attachment = await relay.broker.attach(session, role, take_over, returning)
    except Refused as refused:
        relay.counters.count(refused.drop)
        await websocket.close(refused.code, refused.code.reason)
        return None
    assert claims is not None  # attach refuses a malformed session id
    given = await gate.commit(relay, str(role), claims, session)
    if given is None:
        await relay.broker.detach(attachment)
        relay.counters.count(Drop.UNAUTHORIZED)
        await websocket.close(CloseCode.UNAUTHORIZED, CloseCode.UNAUTHORIZED.reason)
        return None
    logger.info("attached", extra={"event": "attached", "role": str(role), "session": session[:4]})
    # Sent before the writer starts, so an end hears its credentials before anything else.
    await websocket.send_text(gate.credentials_message(relay, given))
    # The tokens presented and given are not kept for the connection's life (memory per
    # idle session, issue 13): only the claims that _read checks.
    held = given.claims
    del presented, claims, given
    return attachment, held


async def _read(websocket: WebSocket, role: Role, relay: RelayState, attachment: Attachment, held: Claims) -> None:
    """Forward the connection's binary frames until it ends (disconnected, credential lapsed, closed); then detach.

    The end closed on purpose (1000 or 4000: a host's deliberate end) or was lost: its
    peer hears which (``broker.detach``). Binary frames that need no wait do not come this
    way: ``_fast_path`` forwards them as they arrive.
    """
    session = attachment.session_id
    writer = _Writer(websocket, attachment.mailbox)
    clean = False  # lost (no close frame, an error, cancelled) unless the end closed on purpose
    try:
        fast = _fast_path(websocket, attachment, relay)
        relay.deadlines.set(attachment, held.expires)  # not renewed by then: RelayState._lapsed
        taken = False
        while True:
            if taken and fast is not None:
                fast.processed()  # done with the last message: frames may take the direct path again
            taken = True
            message = await (websocket.receive() if fast is None else fast.receive())
            if message["type"] == "websocket.disconnect":
                # The WebSocket layer closes on its own for a frame over its size limit
                # (uvicorn's ws_max_size) or a text frame that is not UTF-8: count those here.
                code = message.get("code")
                if code == CloseCode.FRAME_TOO_LARGE and attachment.mailbox.closing is None:
                    relay.counters.count(Drop.OVERSIZED)
                elif code == 1007:
                    relay.counters.count(Drop.MALFORMED)
                clean = deliberate(code)
                return
            data = message.get("bytes")
            if data is not None:
                if len(data) > relay.max_frame_bytes:
                    # Only reached when the server's own limit is looser than the config's.
                    relay.counters.count(Drop.OVERSIZED)
                    await relay.broker.evict(attachment, CloseCode.FRAME_TOO_LARGE)
                    return
                started = time.perf_counter()
                await relay.broker.forward(attachment, data)
                relay.metrics.forwarded(len(data), time.perf_counter() - started)
            elif (asked := _relay_request(message.get("text"))) == "ping":
                # The page's heartbeat (a browser cannot send WebSocket pings): answered at once, so a
                # page that hears nothing for a while knows its connection is dead, not quiet.
                if not attachment.mailbox.push_control(PONG):
                    await relay.broker.evict(attachment, CloseCode.TOO_SLOW)
            elif asked == "renew":
                renewed = await gate.renew(relay, held)
                if renewed is None:
                    relay.counters.count(Drop.UNAUTHORIZED)
                    await relay.broker.evict(attachment, CloseCode.UNAUTHORIZED)
                    return
                held = renewed.claims
                relay.deadlines.set(attachment, held.expires)
                if not attachment.mailbox.push_control(gate.credentials_message(relay, renewed)):
                    await relay.broker.evict(attachment, CloseCode.TOO_SLOW)
            elif attachment.role is Role.HOST and routing.is_drop_request(message.get("text")):
                await relay.broker.drop(attachment)  # a device the host refused must not hold the seat
            else:
                # Only `renew`, `ping` (and a host's `drop`) go to the relay once attached: answer, count, keep it.
                relay.counters.count(Drop.MALFORMED)
                reply = error_message(Drop.MALFORMED, "the relay accepts only binary frames")
                if not attachment.mailbox.push_control(reply):
                    await relay.broker.evict(attachment, CloseCode.TOO_SLOW)
    finally:
        relay.deadlines.drop(attachment)
        await relay.broker.detach(attachment, clean)
        if role is Role.HOST and attachment.mailbox.closing is not CloseCode.REPLACED:
            await gate.end(relay, session)  # the session dies with its host (not one that came back anew)
        await writer.finish()
        code = attachment.mailbox.closing
        logger.info(
            "detached",
            extra={"event": "detached", "role": str(role), "session": session[:4], "code": int(code) if code else None},
        )


def _fast_path(websocket: WebSocket, attachment: Attachment, relay: RelayState) -> FastPath | None:
    """Forward this connection's frames as they arrive and write its peer's out at once, where the server can.

    The relay's own WebSocket protocol (``websocket.py``) offers it; under any other server
    every frame goes through ``_read`` and the ``_Writer``.
    """
    fast = websocket.scope.get("extensions", {}).get(FAST_PATH)
    if not isinstance(fast, FastPath):
        return None
    attachment.mailbox.direct = fast.send_binary
    fast.install(_Forwarder(attachment, relay).receive)
    return fast


class _Forwarder:
    """What ``_fast_path`` installs: a slotted object, not a closure (4 cells and a function: 380 B a connection)."""

    __slots__ = ("attachment", "broker", "limit", "metrics")

    def __init__(self, attachment: Attachment, relay: RelayState) -> None:
        self.attachment = attachment
        self.broker, self.metrics, self.limit = relay.broker, relay.metrics, relay.max_frame_bytes

    def receive(self, frame: bytes) -> bool:
        if len(frame) > self.limit:
            return False  # _read counts it and closes the connection
        started = time.perf_counter()
        if not self.broker.forward_now(self.attachment, frame):
            return False  # it has to wait for room: _read does that
        self.metrics.forwarded(len(frame), time.perf_counter() - started)
        return True


PONG = json.dumps({"type": "pong"})


def _relay_request(text: object) -> str | None:
    """``renew`` or ``ping`` for exactly ``{"type":"renew"}`` or ``{"type":"ping"}``, else None."""
    if not isinstance(text, str) or len(text) > 256:
        return None
    try:
        request = json.loads(text)
    except ValueError:
        return None
    if isinstance(request, dict) and len(request) == 1 and request.get("type") in ("renew", "ping"):
        return str(request["type"])
    return None


def load_keys(path: str | None, now: float) -> KeySet:
    """The relay's key set from ``path`` (created 0600 on first use), or fresh keys for this process.

    Relays that share sessions share this file; when several start at once on a new one,
    the first to link its complete file in wins and the others read that one.
    """
    if path is None:
        return KeySet.generate(now)
    file = Path(path)
    if file.exists():
        return KeySet.from_json(file.read_text(encoding="utf-8"))
    keys = KeySet.generate(now)
    file.parent.mkdir(parents=True, exist_ok=True)
    temporary = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(keys.to_json())
    try:
        os.link(temporary, file)  # atomic, and never over a file another relay made meanwhile
    except FileExistsError:
        return KeySet.from_json(file.read_text(encoding="utf-8"))
    finally:
        temporary.unlink()
    return keys


class _Writer:
    """Sends what the broker queued for one connection, then closes with the code it ends with.

    Its task runs only while there is something to send: an idle connection holds no task
    and no suspended coroutine for it (memory per idle session, issue 13). The mailbox
    ``wake``s it when something is queued or it closes; it ends when the mailbox is empty,
    or for good once it has sent the close, or the client is gone. Then, or however it
    ends (``finish``), what is still queued is dropped and its bytes go back to the relay's
    budget.
    """

    __slots__ = ("mailbox", "task", "websocket")

    def __init__(self, websocket: WebSocket, mailbox: Mailbox) -> None:
        self.websocket = websocket
        self.mailbox = mailbox
        self.task: asyncio.Task[None] | None = None
        mailbox.wake = self.wake
        if len(mailbox) or mailbox.closing is not None:
            self.wake()

    def wake(self) -> None:
        """Start the task, unless it runs (or has ended for good)."""
        if self.task is None:
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        mailbox, websocket = self.mailbox, self.websocket
        try:
            while True:
                item = joining_writes(self._send_now)
                if item is None:
                    self.task = None  # nothing to send: the next item queued starts a task again
                    return
                if isinstance(item, bytes):
                    await websocket.send_bytes(item)
                elif isinstance(item, str):
                    await websocket.send_text(item)
                else:
                    await websocket.close(item, item.reason)
                    mailbox.drop()
                    return
        except BaseException:
            mailbox.drop()
            raise

    def _send_now(self) -> Item | None:
        """Write queued frames straight out while the connection takes them (``mailbox.direct``).

        Returns the first item that needs an await (a text, the close, a frame while the
        socket is full), or None once nothing is queued. A reader that fell behind once so
        catches up at the direct path's cost, not one task switch per frame.
        """
        mailbox = self.mailbox
        while (item := mailbox.take()) is not None:
            if not (isinstance(item, bytes) and mailbox.direct is not None and mailbox.direct(item)):
                return item
        return None

    async def finish(self) -> None:
        """The connection ends: a close the relay asked for goes out (within ``WRITER_GRACE``), then stop."""
        task = self.task
        if task is not None and self.mailbox.closing is not None:
            # The relay closed this connection (oversized, too slow, session ended,
            # shutdown): let the writer send the close frame, within a bound.
            await asyncio.wait({task}, timeout=WRITER_GRACE)
        self.mailbox.drop()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError):
                await task


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
    # A document a browser renders as a page (HTML, SVG) gets the page's headers wherever it is served.
    headers = PAGE_HEADERS if media_type in PAGE_TYPES else ASSET_HEADERS
    if name == "sw.js":  # the viewer's service worker keeps the shell of the pages at ../s/<id> (viewer/static/sw.js)
        headers = {**headers, "Service-Worker-Allowed": "../"}
    body = resource.read_bytes()
    # Phones on a poor network: text assets go gzip-compressed (they hold no secret, so
    # compression reveals nothing), a third of their size.
    if media_type in COMPRESSED_TYPES and _takes_gzip(request.headers.get("accept-encoding", "")):
        body = _gzipped(body)
        headers = {**headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    return Response(body, media_type=media_type, headers=headers)


COMPRESSED_TYPES = frozenset({"text/javascript", "text/css", "text/html", "image/svg+xml", "application/manifest+json"})


def _takes_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


@functools.lru_cache(maxsize=64)
def _gzipped(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)


async def _healthz(request: Request) -> Response:
    """``{"ok": true}``: the relay answers. Its figures are for its operator only (/metrics)."""
    return JSONResponse({"ok": True}, headers={"Cache-Control": "no-store"})


async def _metrics(request: Request) -> Response:
    """The relay's figures for its operator, with ``Authorization: Bearer <operator token>`` (docs/protocol.md)."""
    relay = relay_state(request.app)
    if relay.operator_token is None:
        return PlainTextResponse("metrics are off: set TETHER_RELAY_OPERATOR_TOKEN", status_code=404)
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), relay.operator_token.encode()):
        return PlainTextResponse("operator token required", status_code=401, headers={"WWW-Authenticate": "Bearer"})
    budget = relay.broker.budget
    sessions = await relay.broker.session_count()
    if wants_prometheus(request.headers.get("accept", ""), request.query_params.get("format")):
        body, media_type = relay.metrics.exposition(
            Figures(
                relay.active, sessions, len(relay.by_address), budget.used, budget.peak, budget.limit,
                drops=relay.counters.snapshot(), refusals=dict(relay.refusals),
            ),
            request.headers.get("accept", ""),
        )  # fmt: skip
        return Response(body, headers={"Cache-Control": "no-store", "Content-Type": media_type})
    figures = {
        "sessions": sessions,
        "connections": relay.active,
        "addresses": len(relay.by_address),
        "queued_bytes": budget.used,
        "queued_bytes_peak": budget.peak,
        "queued_bytes_limit": budget.limit,
        "frames_forwarded": relay.metrics.frames,
        "bytes_forwarded": relay.metrics.bytes,
        "drops": relay.counters.snapshot(),
        "credential_refusals": dict(relay.refusals),  # by reason (relay/gate.py)
    }
    return JSONResponse(figures, headers={"Cache-Control": "no-store"})


async def _readyz(request: Request) -> Response:
    """Whether this relay can take sessions: its broker routes and its account store answers (200, else 503).

    For load balancers: no token, and nothing but the two booleans.
    """
    relay = relay_state(request.app)
    broker = await relay.broker.ready()
    store = True if relay.store is None else await asyncio.to_thread(relay.store.reachable)
    return JSONResponse(
        {"ok": broker and store, "broker": broker, "store": store},
        status_code=200 if broker and store else 503,
        headers={"Cache-Control": "no-store"},
    )

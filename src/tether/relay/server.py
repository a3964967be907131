"""Running the relay: standalone (``tether relay serve``) or inside the host process.

Transport settings are deliberate (measured on this machine): uvicorn's
``websockets-sansio`` protocol with the relay's direct path for frames
(``websocket.py``), permessage-deflate off (it made forwarding 6-7x slower
for 8 KiB frames and 20x for 1 MiB, and compression leaks content through sizes), and a
maximum frame size of the protocol's ``MAX_FRAME_BYTES`` (1 MiB plus the 10-byte frame
header with room to spare); the host fragments larger messages itself (docs/protocol.md
section 2). The settings themselves are ``RelayConfig`` (``config.py``).

Before any request (``transport.py``): a cap on open connections, a deadline for each
request head (and, with ``--tls-cert``, for the TLS handshake), request heads of at most
``max_request_head`` bytes, and malformed requests answered 400 and counted. Proxy
headers are read only from ``trusted_proxies``; otherwise a client is its peer address.

An embedded relay must not disturb the process it runs in: it binds its own socket,
installs no signal handlers and leaves logging configuration to its host. Only the
standalone ``serve`` sets up its log output, raises its descriptor limit, tunes memory
release (``process.py``) and stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from tether.errors import RelayBindFailed, TlsUnusable, UserError
from tether.relay.accounts import AccountStore
from tether.relay.admission import Admission
from tether.relay.app import RelayState, create_app, relay_state
from tether.relay.broker import Broker
from tether.relay.config import RelayConfig as RelayConfig  # re-exported: host code imports it from here
from tether.relay.process import connection_cap, log_to_stderr, raise_descriptor_limit, return_freed_memory
from tether.relay.routing import CloseCode
from tether.relay.transport import ConnectionLimits, guarded_protocol, quiet_bad_input
from tether.relay.websocket import RelayWebSocketProtocol

HEARTBEAT = 5.0  # seconds between the relay's pings to each connection, and for each answer


def uvicorn_config(app: Starlette, config: RelayConfig, *, logs: bool) -> uvicorn.Config:
    """The uvicorn settings of a relay (see the module doc); ``logs``: print uvicorn's warnings on stderr.

    uvicorn's own log setup (``dictConfig``) is never used: it closes the handlers already
    installed, among them the root's file handler (tether/logs.py says why that matters).
    """
    if logs:
        log_to_stderr(json_lines=config.log_format == "json")
    quiet_bad_input()
    limits = ConnectionLimits(connection_cap(config), config.handshake_timeout)
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        http=guarded_protocol(limits, relay_state(app).counters),
        ws=RelayWebSocketProtocol,
        ws_per_message_deflate=False,
        # A peer that stopped answering (a phone asleep, a dead network) is dropped within 10 s, so it
        # does not hold its session's one viewer slot for long (DESIGN.md rule 3).
        ws_ping_interval=HEARTBEAT,
        ws_ping_timeout=HEARTBEAT,
        ws_max_size=config.max_frame_bytes,
        h11_max_incomplete_event_size=config.max_request_head,
        timeout_keep_alive=config.keep_alive_timeout,
        # Only a configured proxy may say who the client is (per-address limits use it).
        proxy_headers=bool(config.trusted_proxies),
        forwarded_allow_ips=list(config.trusted_proxies) or None,
        ssl_certfile=config.tls_cert,
        ssl_keyfile=config.tls_key,
        lifespan="off",
        log_level="warning",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(config.shutdown_grace),
    )


def check_tls(config: RelayConfig) -> None:
    """Load the TLS certificate and key now, so a wrong file is one clear error (TlsUnusable)."""
    if config.tls_cert is None or config.tls_key is None:
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsUnusable(f"cannot serve TLS with {config.tls_cert} and {config.tls_key}: {exc}") from None


class _Server(uvicorn.Server):
    """A uvicorn server that closes relay connections with 1001 before it stops."""

    def __init__(self, config: uvicorn.Config, relay: RelayState, grace: float, handshake_timeout: float) -> None:
        super().__init__(config)
        self.relay = relay
        self.grace = grace
        self.handshake_timeout = handshake_timeout
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals belong to whoever runs the relay: the host when embedded, serve() otherwise.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's startup for given sockets, plus a deadline for the TLS handshake: asyncio
        # waits 60 seconds by default, and a connection in its handshake is not yet counted.
        assert sockets is not None, "the relay binds its own sockets"
        config = self.config
        await self.lifespan.startup()

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=_loop
            )

        loop = asyncio.get_running_loop()
        handshake = self.handshake_timeout if config.ssl is not None else None
        self.servers = [
            await loop.create_server(
                create_protocol, sock=sock, ssl=config.ssl, backlog=config.backlog, ssl_handshake_timeout=handshake
            )
            for sock in sockets
        ]
        self.started = True
        self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting first, so that no connection joins after the 1001 round.
        for server in getattr(self, "servers", []):
            server.close()
        await self.relay.shutdown(CloseCode.GOING_AWAY, self.grace)
        await super().shutdown(sockets)
        # A client that never reads keeps its transport flushing forever: cut what is left.
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if isinstance(transport, asyncio.Transport):
                transport.abort()


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port), not yet listening."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise RelayBindFailed(f"cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise RelayBindFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _local_url(sock: socket.socket, scheme: str = "http") -> str:
    """The URL a client on this machine uses to reach ``sock``."""
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = "::1" if host == "::" else host
        return f"{scheme}://[{host}]:{port}"
    return f"{scheme}://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"


class EmbeddedRelay:
    """A relay inside the current event loop (``async with EmbeddedRelay(config) as relay``).

    Entering binds the socket (127.0.0.1 and a free port unless ``config`` says otherwise)
    and returns once the relay accepts connections, so ``url`` is usable at once. Leaving
    closes every connection with 1001 and stops the server; nothing of any session
    survives. ``broker`` replaces the one ``config.broker`` names (tests, benchmarks).
    Raises RelayBindFailed when the address is taken, BrokerUnavailable for an unknown broker.
    """

    def __init__(
        self,
        config: RelayConfig | None = None,
        *,
        broker: Broker | None = None,
        logs: bool = False,
        store: AccountStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config if config is not None else RelayConfig(port=0)
        self.app = create_app(self.config, broker, store=store, clock=clock)
        self._logs = logs
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    @property
    def broker(self) -> Broker:
        """The broker routing for this relay (its ``counters`` are what /healthz shows)."""
        return relay_state(self.app).broker

    @property
    def admission(self) -> Admission:
        """Who may hold which end (tests mint credentials with its keys)."""
        return relay_state(self.app).admission

    @property
    def public_url(self) -> str:
        """The URL browsers use: ``config.public_url`` if set, else ``url``."""
        return self.config.public_url or self.url

    async def __aenter__(self) -> EmbeddedRelay:
        check_tls(self.config)
        await self.broker.start()  # an unreachable Redis is one clear error, before the port opens
        sock = _bind(self.config.host, self.config.port)
        self.url = _local_url(sock, "https" if self.config.tls_cert else "http")
        server = _Server(
            uvicorn_config(self.app, self.config, logs=self._logs),
            relay_state(self.app),
            self.config.shutdown_grace,
            self.config.handshake_timeout,
        )
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name=f"tether relay {self.url}")
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not server.ready.is_set():
            sock.close()
            self._task.result()  # raises what stopped the server
            raise RuntimeError("the relay stopped while starting")
        return self

    def request_stop(self) -> None:
        """Ask the server to stop; ``wait`` then returns once it has."""
        if self._server is not None:
            self._server.should_exit = True

    async def wait(self) -> None:
        """Until the server stops (after ``request_stop``, or on its own)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.request_stop()
        if self._task is None:
            return
        try:
            # Shielded: a cancelled caller must not cut the shutdown short and leave
            # connections half closed; the server finishes it in the background.
            await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if self._server is not None:
                self._server.force_exit = True
            raise


async def serve(config: RelayConfig) -> None:
    """Run a standalone relay until cancelled (Ctrl-C) or SIGTERM, then stop cleanly.

    Returns after SIGTERM; raises CancelledError when cancelled, after the same clean stop.
    """
    raise_descriptor_limit()
    drained = return_freed_memory()
    log_format = os.environ.get("TETHER_RELAY_LOG_FORMAT")
    if log_format:
        try:
            config = dataclasses.replace(config, log_format=log_format.lower())
        except ValueError as exc:
            raise UserError(str(exc)) from None
    async with EmbeddedRelay(config, logs=True) as relay:
        relay.broker.budget.drained = drained  # a flood's memory goes back to the system once it has drained
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, relay.request_stop)
        except (NotImplementedError, RuntimeError, ValueError):
            installed = False  # not the main thread, or no signals here: cancellation still works
        else:
            installed = True
        try:
            await relay.wait()
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGTERM)

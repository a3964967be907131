"""How a relay is set up: where it listens, what it accepts, which broker routes for it.

Plain values only, so the app (``app.py``), the broker and the server (``server.py``) all
depend on this module and not on each other. The frame limit is the protocol's
``MAX_FRAME_BYTES`` (``protocol/frames.py``): the one number hosts, viewers and relays
agree on.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from tether.protocol.frames import MAX_FRAME_BYTES

QUEUE_BYTES = 8 * 1024 * 1024  # per connection: what may wait for a slow reader
QUEUE_FRAMES = 1024
SLOW_TIMEOUT = 10.0  # seconds a queue may stay full before its reader is closed "too slow"
SHUTDOWN_GRACE = 2.0  # seconds connections get to take their 1001 close before they are cut
# Before a relay faces the internet (docs/protocol.md section 1, "Limits"):
TOTAL_QUEUE_BYTES = 256 * 1024 * 1024  # all queues of the relay together: past it senders wait
MAX_CONNECTIONS = 4096  # open TCP connections; fewer when the descriptor limit is lower (server.py)
HANDSHAKE_TIMEOUT = 10.0  # seconds a new connection (or one between requests) has to send a request head
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle HTTP keep-alive connection stays open (uvicorn's own timer)
MAX_REQUEST_HEAD = 16 * 1024  # bytes of request line and headers; more is a bad request
SESSIONS_PER_ADDRESS = 32  # host ends one client address may hold at once


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """How a relay listens, what it accepts and which broker routes for it.

    ``broker`` names the backend: ``memory`` (one process) or ``redis://...`` (processes sharing sessions).
    ``queue_bytes`` / ``queue_frames`` bound what may wait for each connection; a
    connection whose queue stays full for ``slow_timeout`` seconds is closed 4408.
    ``public_url`` is the relay's address as others reach it: every URL it gives out starts
    with it (``relay_public_base``).
    """

    host: str = "127.0.0.1"
    port: int = 8787
    public_url: str | None = None
    max_frame_bytes: int = MAX_FRAME_BYTES
    queue_bytes: int = QUEUE_BYTES
    queue_frames: int = QUEUE_FRAMES
    slow_timeout: float = SLOW_TIMEOUT
    broker: str = "memory"
    shutdown_grace: float = SHUTDOWN_GRACE
    # Credentials (relay/admission.py): the account store, the signing keys, lifetimes.
    db: str | None = None  # sqlite:///PATH or postgresql://...; None: no accounts (no one can initiate)
    keys_file: str | None = None  # JSON key set (auth/keys.py); None: fresh keys for this process only
    routing_lifetime: float = 600.0  # seconds a routing token lives; ends renew it in-band
    join_timeout: float = 10.0  # seconds a viewer has to present its credential after connecting
    # Limits against floods, and transport security (relay/transport.py, server.py).
    total_queue_bytes: int = TOTAL_QUEUE_BYTES
    max_connections: int | None = None  # None: MAX_CONNECTIONS, or what the descriptor limit allows
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    keep_alive_timeout: int = KEEP_ALIVE_TIMEOUT
    max_request_head: int = MAX_REQUEST_HEAD
    sessions_per_address: int = SESSIONS_PER_ADDRESS
    trusted_proxies: tuple[str, ...] = ()  # peers whose X-Forwarded-For names the client (IPs or CIDRs)
    operator_token: str | None = None  # reads /metrics; None: /metrics is off
    tls_cert: str | None = None  # PEM certificate chain: serve HTTPS/WSS itself
    tls_key: str | None = None
    log_format: str = "text"  # standalone relays: "text" (warnings) or "json" (one object per line, events too)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a TCP port")
        if self.max_frame_bytes <= 0 or self.queue_frames <= 0 or self.slow_timeout <= 0:
            raise ValueError("frame size, queue length and slow timeout must be positive")
        if self.queue_bytes < self.max_frame_bytes:
            raise ValueError("queue_bytes must hold at least one frame of max_frame_bytes")
        if self.total_queue_bytes < self.queue_bytes:
            raise ValueError(
                f"the relay-wide queue budget (--max-queued-mib) must hold one full queue: {self.queue_bytes} bytes"
            )
        if self.handshake_timeout <= 0 or self.sessions_per_address <= 0:
            raise ValueError("the handshake timeout and the sessions per address must be positive")
        if self.max_connections is not None and self.max_connections <= 0:
            raise ValueError("max_connections must be positive")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
        if self.public_url is not None:
            _check_public_url(self.public_url)
        if self.log_format not in ("text", "json"):
            raise ValueError(f"log format {self.log_format!r}: TETHER_RELAY_LOG_FORMAT is text or json")


def _check_public_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"the public URL {url!r} must be an http(s) address such as https://relay.example.org")


def relay_public_base(config: RelayConfig) -> str:
    """The base of every URL the relay gives out (session pages, invites, device login).

    ``config.public_url`` (``--public-url``: the address browsers and hosts use, behind TLS),
    without a trailing slash; else the address it listens on (https with ``tls_cert``), an
    any-address read as this machine's loopback, which only this machine can open.
    """
    if config.public_url:
        return config.public_url.rstrip("/")
    scheme = "https" if config.tls_cert else "http"
    host = config.host
    if ":" in host:
        return f"{scheme}://[{'::1' if host == '::' else host}]:{config.port}"
    return f"{scheme}://{'127.0.0.1' if host == '0.0.0.0' else host}:{config.port}"

"""The relay's TCP connections before the app sees them: a cap, a deadline, bad requests counted.

uvicorn alone keeps a connection that never sends a byte open for ever, and its
``limit_concurrency`` only answers 503 once a request has arrived, never for a WebSocket
upgrade. A relay that faces the internet runs out of descriptors that way (issue 8: 1,100
idle connections under ``ulimit -n 1024`` stopped it). So the relay's HTTP protocol is
uvicorn's h11 protocol with three rules added, each counted by reason (routing.Drop):

- cap: at most ``max_connections`` connections are open (HTTP and WebSocket alike); one
  more is answered ``503`` at once and closed: ``over_capacity``;
- deadline: a connection has ``handshake_timeout`` seconds to send a whole request head,
  from when it opens and again after each response; one that is not being served by
  then is closed: ``idle``. (uvicorn's keep-alive timer starts only after a response and
  stops at the first byte of the next request, so a trickling client outlives it.)
- bad requests: a request h11 cannot parse is answered 400 and closed: ``bad_request``. If
  its head was fine and its body is not (a broken chunked encoding), the app is already
  running; its response then goes nowhere instead of ending in a traceback.

With TLS the handshake comes first, bounded by the same timeout (server.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from tether.relay.routing import Counters, Drop

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 29\r\nconnection: close\r\n\r\nrelay at its connection limit"
)
BAD = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 11\r\nconnection: close\r\n\r\nbad request"
)
QUIET_INTERVAL = 10.0  # seconds: at most one log line per kind of bad input in that time


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What the protocol enforces (RelayConfig's values, the connection cap resolved)."""

    max_connections: int
    handshake_timeout: float


def guarded_protocol(limits: ConnectionLimits, counters: Counters) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the rules of the module doc, counting into ``counters``."""

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            over = len(self.connections) >= limits.max_connections
            super().connection_made(transport)
            if over:
                counters.count(Drop.OVER_CAPACITY)
                transport.write(BUSY)
                transport.close()
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_websocket_upgrade(self, event: h11.Request) -> None:
            self._disarm()  # the WebSocket protocol takes the connection over; nothing of this one may linger
            super().handle_websocket_upgrade(event)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request head has the same deadline as the first

        def send_400_response(self, msg: str) -> None:
            counters.count(Drop.BAD_REQUEST)
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                # The app runs for a request whose body broke: let its response go nowhere.
                cycle.disconnected = True
                cycle.message_event.set()
                if cycle.response_started:
                    self.transport.close()
                    return
            self.transport.write(BAD)
            self.transport.close()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(limits.handshake_timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or self.transport.get_protocol() is not self:
                return  # closed already, or upgraded to a WebSocket
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a request is being served; its completion arms the deadline again
            counters.count(Drop.IDLE)
            self.transport.close()

    return GuardedH11Protocol


class BadInputLog(logging.Filter):
    """uvicorn's lines about bad input from clients: one line, no traceback, at most one per kind per interval.

    Installed on the ``uvicorn.error`` logger. A malformed request or an invalid UTF-8 text
    frame is the client's fault, not the relay's: uvicorn logs the latter with a
    traceback. The relay counts these by reason (``bad_request``, ``malformed``); the
    log only says that they happen, so a flood of them cannot flood the log.
    """

    MESSAGES = (
        "Invalid HTTP request received.",
        "Invalid UTF-8 sequence received from client.",
        "Unsupported upgrade request.",
    )

    def __init__(self, interval: float = QUIET_INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}
        self._quieted: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        if message not in self.MESSAGES:
            return True
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        now = time.monotonic()
        if now - self._last.get(message, -self.interval) < self.interval:
            self._quieted[message] = self._quieted.get(message, 0) + 1
            return False
        self._last[message] = now
        if quieted := self._quieted.pop(message, 0):
            record.msg = f"{message} ({quieted} more like it not logged)"
        return True


def quiet_bad_input(logger: logging.Logger | None = None) -> None:
    """Install :class:`BadInputLog` on ``uvicorn.error`` once per process."""
    logger = logger or logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, BadInputLog) for existing in logger.filters):
        logger.addFilter(BadInputLog())

"""Running the relay: standalone (``tether relay serve``) or inside the host process.

Transport settings are deliberate (measured on this machine): the ``websockets-sansio``
protocol, permessage-deflate off (it made forwarding 6-7x slower for 8 KB frames and 20x
for 1 MB), and a maximum frame size of 1 MiB plus the frame header; the host fragments
larger messages itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from dataclasses import dataclass
from types import TracebackType

import uvicorn

from tether.relay.app import create_app
from tether.relay.broker import Broker, create_broker
from tether.relay.routing import CloseCode

MAX_FRAME = 1024 * 1024 + 64


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """How a relay listens and routes."""

    host: str = "127.0.0.1"
    port: int = 8787
    public_url: str | None = None
    max_frame_bytes: int = MAX_FRAME
    broker: str = "memory"


def _uvicorn_config(config: RelayConfig, broker: Broker) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(broker),
        host=config.host,
        port=config.port,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_max_size=config.max_frame_bytes,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )


class _Server(uvicorn.Server):
    """A uvicorn server that closes relay connections with 1001 before stopping."""

    def __init__(self, config: uvicorn.Config, broker: Broker) -> None:
        super().__init__(config)
        self.broker = broker

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.broker.close_all(CloseCode.GOING_AWAY)
        await asyncio.sleep(0)  # let the endpoints send their close frames
        await super().shutdown(sockets)

    def install_signal_handlers(self) -> None:
        # Signals belong to whoever runs the relay: the host when embedded, serve() otherwise.
        return


async def serve(config: RelayConfig) -> None:
    """Run a relay until cancelled (Ctrl-C or SIGTERM in the standalone command)."""
    broker = create_broker(config.broker)
    server = _Server(_uvicorn_config(config, broker), broker)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    await server.serve()


class EmbeddedRelay:
    """A relay inside the current event loop, on 127.0.0.1 by default (``async with``).

    The socket is bound before the server starts, so ``url`` is known even with port 0.
    """

    def __init__(self, config: RelayConfig | None = None) -> None:
        self.config = config or RelayConfig(port=0)
        self.broker = create_broker(self.config.broker)
        self._server = _Server(_uvicorn_config(self.config, self.broker), self.broker)
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def __aenter__(self) -> EmbeddedRelay:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        host, port = sock.getsockname()[:2]
        self.url = self.config.public_url or f"http://{host}:{port}"
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped the server
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

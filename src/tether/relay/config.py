"""How a relay is set up: where it listens, what it accepts, which broker routes for it.

Plain values only, so the app (``app.py``), the broker and the server (``server.py``) all
depend on this module and not on each other. The frame limit is the protocol's
``MAX_FRAME_BYTES`` (``protocol/frames.py``): the one number hosts, viewers and relays
agree on.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.protocol.frames import MAX_FRAME_BYTES

QUEUE_BYTES = 8 * 1024 * 1024  # per connection: what may wait for a slow reader
QUEUE_FRAMES = 1024
SLOW_TIMEOUT = 10.0  # seconds a queue may stay full before its reader is closed "too slow"
SHUTDOWN_GRACE = 2.0  # seconds connections get to take their 1001 close before they are cut


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """How a relay listens, what it accepts and which broker routes for it.

    ``broker`` names the backend: ``memory`` (one process) or, later, ``redis://...``.
    ``queue_bytes`` / ``queue_frames`` bound what may wait for each connection; a
    connection whose queue stays full for ``slow_timeout`` seconds is closed 4408.
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

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a TCP port")
        if self.max_frame_bytes <= 0 or self.queue_frames <= 0 or self.slow_timeout <= 0:
            raise ValueError("frame size, queue length and slow timeout must be positive")
        if self.queue_bytes < self.max_frame_bytes:
            raise ValueError("queue_bytes must hold at least one frame of max_frame_bytes")

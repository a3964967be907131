"""Relay forwarding throughput: frames/s and MB/s for 8 KiB and 1 MiB frames.

Run: ``.venv/bin/python benchmarks/relay_throughput.py`` (``--quick`` for a smoke run).

Setup, all on 127.0.0.1 and in this one process and event loop (so one CPU core carries
the relay and both clients, as in the embedded default): an EmbeddedRelay with the
shipped settings (uvicorn with the relay's WebSocket protocol, no permessage-deflate, 1 MiB + 64 frame
limit, memory broker), a host client and a viewer client using `websockets` with
``compression=None``. The host sends a fixed number of frames of random bytes, the viewer
reads them; time runs from the first send to the last frame read. Each size is measured
in several rounds after a warm-up, and every run stops at its frame count or its time
bound, whichever comes first. The last frame is checked byte for byte.

Numbers vary with the machine and its load: compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import secrets
import statistics
import sys
import time
from dataclasses import dataclass

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.version import version as websockets_version

from tether.relay.server import EmbeddedRelay, RelayConfig
from tether.testing import initiation_token

KIB, MIB = 1024, 1024 * 1024
SIZES = [(8 * KIB, 20_000), (MIB, 400)]  # frame size, frames per round
ROUNDS = 3
WARMUP_FRAMES = 50
TIME_BOUND = 15.0  # seconds per round at most
END = b""  # the end marker: the relay forwards an empty frame like any other


@dataclass(frozen=True, slots=True)
class Round:
    """One measured round: frames read by the viewer and the time they took."""

    frames: int
    size: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds

    @property
    def megabytes_per_second(self) -> float:
        return self.frames * self.size / self.seconds / 1e6


async def pair(relay: EmbeddedRelay) -> tuple[ClientConnection, ClientConnection]:
    """A host and a viewer of a new session, past their `peer joined` notices."""
    session_id = secrets.token_urlsafe(16)
    base = relay.url.replace("http://", "ws://", 1)
    headers = {"Authorization": f"Bearer {initiation_token(relay.admission)}"}
    host = await websockets.connect(
        f"{base}/v1/host/{session_id}", compression=None, max_size=2 * MIB, additional_headers=headers
    )
    join = json.loads(await host.recv())["join"]  # this end's credentials come first
    viewer = await websockets.connect(f"{base}/v1/viewer/{session_id}", compression=None, max_size=2 * MIB)
    await viewer.send(json.dumps({"type": "join", "token": join}))
    await viewer.recv()  # credentials
    await viewer.recv()  # peer joined
    await host.recv()  # peer joined
    return host, viewer


async def one_round(relay: EmbeddedRelay, size: int, count: int, bound: float) -> Round:
    """Send up to ``count`` frames of ``size`` bytes host -> viewer within ``bound`` seconds."""
    host, viewer = await pair(relay)
    frames = [secrets.token_bytes(size) for _ in range(4)]  # a few, so no frame is a repeat of the last

    async def send() -> int:
        deadline = time.perf_counter() + bound
        sent = 0
        while sent < count and time.perf_counter() < deadline:
            await host.send(frames[sent % len(frames)])
            sent += 1
        await host.send(END)
        return sent

    started = time.perf_counter()
    sender = asyncio.create_task(send())
    received, last = 0, END
    while (frame := await viewer.recv()) != END:
        assert isinstance(frame, bytes), "the relay forwarded a text frame"
        received, last = received + 1, frame
    elapsed = time.perf_counter() - started
    sent = await sender
    assert received == sent, f"sent {sent} frames, the viewer read {received}"
    assert last == frames[(sent - 1) % len(frames)], "the last frame arrived changed"
    await host.close()
    await viewer.close()
    return Round(received, size, elapsed)


async def main(quick: bool) -> None:
    rounds = 1 if quick else ROUNDS
    print("tether relay throughput, host -> viewer through an embedded relay on 127.0.0.1")
    print(f"python {platform.python_version()}, websockets {websockets_version}, {platform.machine()}")
    print(f"{rounds} round(s) per size after a warm-up; median (best) of the rounds\n")
    print(f"{'frame':>8} {'frames':>7} {'frames/s':>18} {'MB/s':>16}")
    async with EmbeddedRelay(RelayConfig(port=0)) as relay:
        for size, count in SIZES:
            if quick:
                count = max(10, count // 20)
            await one_round(relay, size, WARMUP_FRAMES, TIME_BOUND)
            results = [await one_round(relay, size, count, TIME_BOUND) for _ in range(rounds)]
            rates = [r.frames_per_second for r in results]
            speeds = [r.megabytes_per_second for r in results]
            label = f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"
            print(
                f"{label:>8} {results[0].frames:>7} "
                f"{statistics.median(rates):>9.0f} ({max(rates):>6.0f}) "
                f"{statistics.median(speeds):>7.1f} ({max(speeds):>6.1f})"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (fewer frames, one round)")
    args = parser.parse_args()
    asyncio.run(main(args.quick))
    sys.exit(0)

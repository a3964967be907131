"""Relay benchmarks: forwarding throughput and how fast a session's end reaches the viewer.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/relay_bench.py``). Everything is
on 127.0.0.1: an embedded relay (uvicorn, websockets-sansio, no compression) in this
process, a host client and a viewer client. Bounded in count and time.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time

import websockets

from tether.relay.server import EmbeddedRelay, RelayConfig

SIZES = [(8 * 1024, 4000), (64 * 1024, 1000), (1024 * 1024, 100)]  # frame size, frame count
END_ROUNDS = 50


async def pair(relay: EmbeddedRelay) -> tuple[websockets.ClientConnection, websockets.ClientConnection]:
    session_id = secrets.token_urlsafe(16)
    base = relay.url.replace("http", "ws", 1)
    host = await websockets.connect(f"{base}/v1/host/{session_id}", compression=None, max_size=2**21)
    viewer = await websockets.connect(f"{base}/v1/viewer/{session_id}", compression=None, max_size=2**21)
    await viewer.recv()  # peer joined
    await host.recv()
    return host, viewer


async def throughput(relay: EmbeddedRelay, size: int, count: int) -> tuple[float, float]:
    """Frames per second and MB/s from host to viewer."""
    host, viewer = await pair(relay)
    payload = secrets.token_bytes(size)

    async def send() -> None:
        for _ in range(count):
            await host.send(payload)

    started = time.perf_counter()
    sender = asyncio.create_task(send())
    for _ in range(count):
        await viewer.recv()
    elapsed = time.perf_counter() - started
    await sender
    await host.close()
    await viewer.close()
    return count / elapsed, count * size / elapsed / 1e6


async def end_latency(relay: EmbeddedRelay) -> list[float]:
    """Milliseconds from the host closing to the viewer seeing its close (4000)."""
    samples = []
    for _ in range(END_ROUNDS):
        host, viewer = await pair(relay)
        started = time.perf_counter()
        await host.close()
        try:
            await viewer.recv()
        except websockets.ConnectionClosed:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


async def main() -> None:
    async with EmbeddedRelay(RelayConfig(port=0)) as relay:
        print(f"{'frame':>10} {'frames':>7} {'frames/s':>10} {'MB/s':>8}")
        for size, count in SIZES:
            rate, mbps = await throughput(relay, size, count)
            print(f"{size:>10} {count:>7} {rate:>10.0f} {mbps:>8.1f}")
        samples = await end_latency(relay)
        print(
            f"session end -> viewer closed: median {statistics.median(samples):.2f} ms, "
            f"max {max(samples):.2f} ms over {len(samples)} sessions"
        )


if __name__ == "__main__":
    asyncio.run(main())

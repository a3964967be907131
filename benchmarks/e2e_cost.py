"""The cost of end-to-end encryption: the same traffic through the relay, plain frames against sealed ones.

Run: ``.venv/bin/python benchmarks/e2e_cost.py`` (``--quick`` for a smoke run).

Setup, all on 127.0.0.1 in one process and event loop: an EmbeddedRelay (memory broker),
a host end and a viewer end using `websockets` with ``compression=None``, each speaking
tether's framing. "plain" sends Channel frames (protocol version 1's wire format);
"sealed" sends SecureChannel frames (version 2: AES-256-GCM per frame, keys from a real
X25519 handshake made once per connection). Plain and sealed rounds alternate, so both see
the same machine load. Measured:

- round trip of a 1 KiB message (viewer -> host -> viewer, each end encoding and decoding),
  p50 and p99 over a fixed count;
- throughput of 8 KiB messages host -> viewer (messages/s), the viewer decoding each;
- the local cost of sealing and opening one 1 KiB and one 64 KiB message (no network).

Numbers vary with the machine and its load: compare the two columns of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

import websockets

from tether.protocol.channel import Channel
from tether.protocol.crypto import HostHandshake, KeyOffer, ViewerHandshake
from tether.protocol.secure import SecureChannel, handshake_payload
from tether.relay.server import EmbeddedRelay, RelayConfig
from tether.testing import initiation_token

SESSION = "ZTJlLWNvc3QtYmVuY2htYXJr"


class PlainEnd:
    def __init__(self) -> None:
        self.channel = Channel()

    def send(self, payload: bytes) -> list[bytes]:
        return self.channel.send_payload(payload)

    def receive(self, data: bytes) -> Any:
        return self.channel.receive(data)


class SealedEnd:
    def __init__(self, secure: SecureChannel) -> None:
        self.secure = secure

    def send(self, payload: bytes) -> list[bytes]:
        return self.secure.seal(payload)

    def receive(self, data: bytes) -> Any:
        return self.secure.open(data)


def ends(sealed: bool) -> tuple[Any, Any]:
    if not sealed:
        return PlainEnd(), PlainEnd()
    secret = os.urandom(32)
    viewer, host = SecureChannel(), SecureChannel()
    handshake = ViewerHandshake(SESSION, secret, os.urandom)
    offer = viewer.offer_frame(handshake)
    reply = host.accept(HostHandshake(SESSION, secret, os.urandom), KeyOffer.parse(handshake_payload(offer)))
    viewer.take_reply(handshake, reply)
    return SealedEnd(host), SealedEnd(viewer)


def message(size: int) -> bytes:
    text = "x" * (size - 40)
    return json.dumps({"kind": "append", "id": "m1", "text": text}, separators=(",", ":")).encode()


async def connect(relay: EmbeddedRelay, session_id: str) -> tuple[Any, Any]:
    base = relay.url.replace("http://", "ws://")
    token = initiation_token(relay.admission)
    host = await websockets.connect(f"{base}/v1/host/{session_id}", compression=None, max_size=None,
                                    additional_headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    join = json.loads(await host.recv())["join"]
    viewer = await websockets.connect(f"{base}/v1/viewer/{session_id}", compression=None, max_size=None)
    await viewer.send(json.dumps({"type": "join", "token": join}))
    await viewer.recv()  # the viewer's credentials come first
    while True:  # the host hears that the viewer joined
        if isinstance(data := await host.recv(), str) and '"peer"' in data:
            break
    return host, viewer


async def binary(ws: Any) -> bytes:
    while isinstance(data := await ws.recv(), str):
        pass
    return data  # type: ignore[no-any-return]


async def round_trips(relay: EmbeddedRelay, sealed: bool, count: int) -> list[float]:
    host_end, viewer_end = ends(sealed)
    host, viewer = await connect(relay, os.urandom(12).hex())
    payload = message(1024)
    times = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            for frame in viewer_end.send(payload):
                await viewer.send(frame)
            host_end.receive(await binary(host))
            for frame in host_end.send(payload):
                await host.send(frame)
            viewer_end.receive(await binary(viewer))
            times.append(time.perf_counter() - start)
    finally:
        await host.close()
        await viewer.close()
    return times


async def throughput(relay: EmbeddedRelay, sealed: bool, count: int) -> float:
    host_end, viewer_end = ends(sealed)
    host, viewer = await connect(relay, os.urandom(12).hex())
    payload = message(8 * 1024)

    async def send() -> None:
        for _ in range(count):
            for frame in host_end.send(payload):
                await host.send(frame)

    try:
        start = time.perf_counter()
        sender = asyncio.create_task(send())
        for _ in range(count):
            viewer_end.receive(await binary(viewer))
        await sender
        return count / (time.perf_counter() - start)
    finally:
        await host.close()
        await viewer.close()


def local_cost(size: int, count: int) -> tuple[float, float]:
    """Microseconds per message: plain encode+decode, sealed encode+decode."""
    payload = message(size)
    spent = {False: 0.0, True: 0.0}
    for sealed in (False, True, False, True):  # a warm-up pass of each, then alternating halves
        sender, receiver = ends(sealed)
        start = time.perf_counter()
        for _ in range(count // 2):
            for frame in sender.send(payload):
                receiver.receive(frame)
        spent[sealed] = time.perf_counter() - start  # the second pass of each is kept
    return spent[False] / (count // 2) * 1e6, spent[True] / (count // 2) * 1e6


async def main(quick: bool) -> None:
    rounds = 2 if quick else 5
    trips, messages = (200, 2_000) if quick else (1_000, 10_000)
    rtt: dict[bool, list[float]] = {False: [], True: []}
    rate: dict[bool, list[float]] = {False: [], True: []}
    async with EmbeddedRelay(RelayConfig(host="127.0.0.1", port=0)) as relay:
        for _ in range(rounds):  # alternating rounds, same load for both
            for sealed in (False, True):
                rtt[sealed] += await round_trips(relay, sealed, trips)
                rate[sealed].append(await throughput(relay, sealed, messages))

    def pct(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] * 1e6

    print(f"end-to-end encryption cost, {rounds} alternating rounds, 127.0.0.1, one process")
    print(f"{'figure':44} {'plain':>12} {'sealed':>12} {'ratio':>7}")
    rows = [
        ("round trip 1 KiB message, p50 (us)", pct(rtt[False], 50), pct(rtt[True], 50)),
        ("round trip 1 KiB message, p99 (us)", pct(rtt[False], 99), pct(rtt[True], 99)),
        ("8 KiB messages host->viewer (msg/s, median)", statistics.median(rate[False]), statistics.median(rate[True])),
    ]
    for size in (1024, 64 * 1024):
        plain, sealed = local_cost(size, 2_000 if quick else 20_000)
        rows.append((f"encode+decode {size // 1024} KiB locally (us)", plain, sealed))
    for name, plain, sealed in rows:
        print(f"{name:44} {plain:12,.1f} {sealed:12,.1f} {sealed / plain:6.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer rounds and messages")
    asyncio.run(main(parser.parse_args().quick))

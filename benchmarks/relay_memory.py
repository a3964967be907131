"""Relay memory under a flood of sessions whose viewers never read, and after it.

Run: ``.venv/bin/python benchmarks/relay_memory.py`` (``--sessions 150 --budget 256`` for
the issue's case; ``--quick`` for a smoke run).

Setup: a real ``tether relay serve`` process on 127.0.0.1 with ``--max-queued-mib
BUDGET``. A client opens SESSIONS sessions of its own (host and viewer ends, with
credentials minted from the relay's key set), pumps FRAMES frames of 1 MiB from each host
and never reads the viewers (their client stops reading after one message). The relay's
resident memory (VmRSS) is read before the flood, at its peak while it runs, and after
every flood connection is closed and the relay reports nothing queued (2 s after). The figures
``queued_bytes_peak`` and drop counts come from its ``/metrics``.

Before issue 8 (no relay-wide budget, glibc's dynamic mmap threshold): 40 sessions took
the relay from 43 MiB to 541 MiB, and it stayed at 479 MiB after they closed. After (this
machine, budget 256 MiB, the relay's baseline now 80 MiB with the account store loaded):
40 sessions peak at 474 MiB and leave 165 MiB; 150 sessions peak at 851 MiB (the budget
plus a few frames in flight per sending session) and leave 285 MiB. ``queued_bytes_peak``
is the budget exactly. What stays after is allocator fragmentation, not objects: after a
flood, tracemalloc finds only the modules' own memory, and no connection object is left.
Issue 13 keeps frames on the heap (mmapping each made a 1 MB round trip twice as slow)
and trims the heap once the queues are empty after a flood (``relay/process.py``): 40
sessions peak at 500 MiB and leave 132 MiB; 150 peak at 905 MiB and leave 240 MiB.

Numbers vary with the machine (socket buffers, allocator): compare runs on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from tether.auth.keys import KeySet
from tether.auth.tokens import Purpose, mint

MIB = 1024 * 1024
TOKEN = secrets.token_urlsafe(24)


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def metrics(url: str) -> dict[str, object]:
    """The relay's /metrics."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    response.raise_for_status()
    figures: dict[str, object] = response.json()
    return figures


async def control(ws: ClientConnection, kind: str) -> dict[str, object]:
    """The next control message of type ``kind``."""
    while True:
        message = await ws.recv()
        if isinstance(message, str) and (parsed := json.loads(message)).get("type") == kind:
            result: dict[str, object] = parsed
            return result


async def flood_session(base: str, keys: KeySet, frames: int, held: list[ClientConnection]) -> None:
    """One session of the flood: pump ``frames`` frames of 1 MiB to a viewer that never reads."""
    session_id = secrets.token_urlsafe(16)
    token, _ = mint(keys, Purpose.INITIATE, "bench", time.time(), os.urandom)
    host = await websockets.connect(
        f"{base}/v1/host/{session_id}",
        compression=None,
        max_size=None,
        additional_headers={"Authorization": f"Bearer {token}"},
    )
    join = (await control(host, "credentials"))["join"]
    viewer = await websockets.connect(f"{base}/v1/viewer/{session_id}", compression=None, max_size=None, max_queue=1)
    await viewer.send(json.dumps({"type": "join", "token": join}))
    held += [host, viewer]
    await control(host, "peer")
    frame = secrets.token_bytes(MIB - 64)
    try:
        for _ in range(frames):
            await host.send(frame)
    except websockets.ConnectionClosed:
        pass


def start_relay(
    folder: str, keys: KeySet, sessions: int, budget: int, slow: float
) -> tuple[subprocess.Popen[bytes], str]:
    """`tether relay serve` with the flood's settings, once it answers: the process and its URL."""
    keys_file = Path(folder) / "keys.json"
    keys_file.write_text(keys.to_json())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TETHER_STATE_DIR": folder, "TETHER_CONFIG_DIR": folder, "TETHER_RELAY_OPERATOR_TOKEN": TOKEN}
    command = [sys.executable, "-m", "tether.cli.main", "relay", "serve", "--port", str(port)]
    command += ["--keys", str(keys_file), "--max-queued-mib", str(budget), "--slow-timeout", str(slow)]
    command += ["--sessions-per-address", str(sessions + 1)]
    relay = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return relay, url
        except httpx.TransportError:
            time.sleep(0.05)
    relay.kill()
    raise RuntimeError("the relay did not start")


async def run(relay: subprocess.Popen[bytes], url: str, keys: KeySet, sessions: int, frames: int) -> None:
    """The flood against ``relay``, and the figures before, during and after it."""
    before = rss_mib(relay.pid)
    held: list[ClientConnection] = []
    started = time.monotonic()
    flood = asyncio.gather(*(flood_session(url.replace("http", "ws", 1), keys, frames, held)
                             for _ in range(sessions)))  # fmt: skip
    peak = before
    while not flood.done():
        peak = max(peak, rss_mib(relay.pid))
        await asyncio.wait({flood}, timeout=0.1)
    await flood
    flooded = time.monotonic() - started
    figures = await metrics(url)
    for ws in held:
        ws.transport.abort()
    for _ in range(600):  # until the relay has let go of every flood session
        if (await metrics(url))["sessions"] == 0:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # the relay trims its heap a second after its queues emptied (relay/process.py)
    after = rss_mib(relay.pid)
    drops = figures["drops"]
    assert isinstance(drops, dict)
    print(f"RSS before {before:.0f} MiB, peak {peak:.0f} MiB, after {after:.0f} MiB")
    peak_queued = int(str(figures["queued_bytes_peak"])) / MIB
    print(f"queued peak {peak_queued:.1f} MiB; too_slow cuts {drops['too_slow']}; flood took {flooded:.1f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--budget", type=int, default=256, help="--max-queued-mib of the relay")
    parser.add_argument("--slow-timeout", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.frames, args.budget = 8, 12, 32
    print(f"sessions={args.sessions} frames={args.frames} x 1 MiB budget={args.budget} MiB slow={args.slow_timeout}s")
    keys = KeySet.generate(time.time())
    with tempfile.TemporaryDirectory() as folder:
        relay, url = start_relay(folder, keys, args.sessions, args.budget, args.slow_timeout)
        try:
            asyncio.run(run(relay, url, keys, args.sessions, args.frames))
        finally:
            relay.terminate()
            relay.wait()


if __name__ == "__main__":
    main()

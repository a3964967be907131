"""The relay side by side with its baselines: one table, every row measured in the same run.

Run: ``.venv/bin/python benchmarks/relay_scale.py`` (``make bench``; ``--quick`` for a
smoke run, ``--idle-sessions N`` to change the memory row's 10,000, ``--rows`` to measure
some rows only: ``rtt throughput big memory open redis``). A full run takes about three
minutes on a 2-CPU machine.

Setup, all on 127.0.0.1. Each server under test runs in a process of its own pinned to
CPU 0; this client process is pinned to CPU 1 (on a machine with one CPU, nothing is
pinned). The servers:

- ``bare``: ``benchmarks/bare_forwarder.py``, the obvious forwarder on ``websockets``
  (same URL scheme, no credentials);
- ``tether``: ``tether relay serve`` as shipped (memory broker), credentials minted with
  its key set, as a logged-in device gets them;
- ``tether A/B``: two ``tether relay serve --broker redis://...`` processes on one
  ``redis-server`` (A on CPU 0, B and Redis on CPU 1 with this client: the machine has
  two), host ends on A, viewer ends on B;
- ``redis pub/sub``: two redis-py connections in this process, one publishing and one
  subscribed: what the cross-process path cannot beat.

Rounds alternate between a row's baseline and the relay (``ROUNDS`` each, median
reported), so a change in the machine's load hits both alike. Round trips are
host -> relay -> viewer -> relay -> host, one frame in flight; throughput is every host
sending its frames at once and every viewer reading them, counted when the last arrives.
One session's 200 B frames keep this client's CPU busy, not the server's: the client sends
each frame with a system call of its own, and a server idle part of the time has to be
woken by many of them, at the client's expense (a busier server is woken less). So that
row's ratio moves with how the server's reads fall for the client, and the server's own
CPU time per frame forwarded is a row of its own. Memory is the server's VmRSS after
opening the idle sessions minus before, per session.
Sessions per second open host and viewer ends (credentials checked, peer joined) from
50 concurrent openers.

Numbers vary with the machine and its load: compare runs on one machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import websockets
from websockets.asyncio.client import ClientConnection

from tether.auth.keys import KeySet
from tether.auth.tokens import Purpose, mint

ROOT = Path(__file__).resolve().parent.parent
TETHER = [sys.executable, "-m", "tether.cli.main"]
ROUNDS = 3
THROUGHPUT_ROUNDS = 7  # a round takes a fraction of a second, and one client process drives both ends: noisy
OPENERS = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cpu: int) -> Callable[[], None]:
    def apply() -> None:
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {cpu})

    return apply


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@dataclass
class Server:
    """A server under test: how to open a session on it."""

    name: str
    host_url: str  # ws://... of the process host ends connect to
    viewer_url: str  # ws://... of the process viewer ends connect to
    pid: int
    keys: KeySet | None = None  # tether: mints initiation tokens

    async def open(self) -> tuple[ClientConnection, ClientConnection]:
        """A session with both ends joined."""
        session = secrets.token_urlsafe(16)
        options: dict[str, object] = {
            "compression": None,
            "max_size": 2**21,
            "ping_interval": None,
            "open_timeout": 120,
        }
        if self.keys is None:
            host = await websockets.connect(f"{self.host_url}/v1/host/{session}", **options)  # type: ignore[arg-type]
            viewer = await websockets.connect(f"{self.viewer_url}/v1/viewer/{session}", **options)  # type: ignore[arg-type]
        else:
            token, _ = mint(self.keys, Purpose.INITIATE, "bench-device", time.time(), os.urandom)
            host = await websockets.connect(
                f"{self.host_url}/v1/host/{session}",
                additional_headers={"Authorization": f"Bearer {token}"},
                **options,  # type: ignore[arg-type]
            )
            join = json.loads(await host.recv())["join"]
            viewer = await websockets.connect(f"{self.viewer_url}/v1/viewer/{session}", **options)  # type: ignore[arg-type]
            await viewer.send(json.dumps({"type": "join", "token": join}))
        await _until_joined(host)
        await _until_joined(viewer)
        return host, viewer


async def _until_joined(ws: ClientConnection) -> None:
    while True:
        message = await ws.recv()
        if isinstance(message, str) and "joined" in message:
            return


async def _binary(ws: ClientConnection) -> bytes:
    while True:
        message = await ws.recv()
        if isinstance(message, bytes):
            return message


# -- measurements ---------------------------------------------------------------------------


async def round_trips(server: Server, size: int, count: int) -> list[float]:
    """Seconds per host -> viewer -> host round trip of a ``size``-byte frame."""
    host, viewer = await server.open()
    payload = os.urandom(size)

    async def echo() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await viewer.send(await _binary(viewer))

    echoing = asyncio.create_task(echo())
    times = []
    for _ in range(count):
        start = time.perf_counter()
        await host.send(payload)
        await _binary(host)
        times.append(time.perf_counter() - start)
    echoing.cancel()
    await host.close()
    await viewer.close()
    return times[max(1, count // 20) :]  # the first few warm up


async def throughput(server: Server, size: int, sessions: int, frames: int) -> float:
    """Frames per second delivered when ``sessions`` hosts each send ``frames`` frames at once."""
    pairs = [await server.open() for _ in range(sessions)]
    payload = os.urandom(size)

    async def send(host: ClientConnection) -> None:
        for _ in range(frames):
            await host.send(payload)

    async def read(viewer: ClientConnection) -> None:
        for _ in range(frames):
            await _binary(viewer)

    start = time.perf_counter()
    await asyncio.gather(*(send(h) for h, _ in pairs), *(read(v) for _, v in pairs))
    seconds = time.perf_counter() - start
    for host, viewer in pairs:
        await host.close()
        await viewer.close()
    return sessions * frames / seconds


async def sessions_per_second(server: Server, count: int) -> float:
    """Sessions opened per second (both ends joined) by OPENERS concurrent openers."""
    opened: list[tuple[ClientConnection, ClientConnection]] = []
    queue = iter(range(count))

    async def opener() -> None:
        for _ in queue:
            opened.append(await server.open())

    start = time.perf_counter()
    await asyncio.gather(*(opener() for _ in range(OPENERS)))
    seconds = time.perf_counter() - start
    await asyncio.gather(*(ws.close() for pair in opened for ws in pair))
    return count / seconds


async def idle_memory(server: Server, count: int) -> tuple[float, int]:
    """KB of the server's resident memory per idle session (host and viewer connected), and the sessions opened.

    A session that fails to open (a loaded machine) is left out of the count, not fatal.
    """
    before = rss_kib(server.pid)
    opened: list[tuple[ClientConnection, ClientConnection]] = []
    queue = iter(range(count))

    async def opener() -> None:
        for _ in queue:
            try:
                opened.append(await server.open())
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                print(f"  a session failed to open on {server.name}: {exc}", file=sys.stderr)

    await asyncio.gather(*(opener() for _ in range(OPENERS)))
    after = rss_kib(server.pid)
    await asyncio.gather(*(ws.close() for pair in opened for ws in pair))
    return (after - before) * 1024 / max(1, len(opened)) / 1000, len(opened)


async def redis_pubsub(url: str, size: int, count: int, in_flight: int) -> tuple[float, float]:
    """Redis pub/sub alone: (round trip p50 seconds with one message in flight, messages/s pipelined)."""
    import redis.asyncio as aioredis

    publisher, subscriber = aioredis.Redis.from_url(url), aioredis.Redis.from_url(url)
    pubsub = subscriber.pubsub()
    await pubsub.subscribe("bench")
    payload = os.urandom(size)

    async def next_message() -> None:
        while (await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)) is None:
            pass

    times = []
    for _ in range(count // 4):
        start = time.perf_counter()
        await publisher.publish("bench", payload)
        await next_message()
        times.append(time.perf_counter() - start)

    async def publish_all() -> None:
        for first in range(0, count, in_flight):
            async with publisher.pipeline(transaction=False) as pipe:
                for _ in range(min(in_flight, count - first)):
                    pipe.publish("bench", payload)
                await pipe.execute()

    start = time.perf_counter()
    await asyncio.gather(publish_all(), _read_n(next_message, count))
    rate = count / (time.perf_counter() - start)
    await pubsub.aclose()
    await publisher.aclose()
    await subscriber.aclose()
    return statistics.median(times), rate


async def _read_n(read: Callable[[], Awaitable[None]], count: int) -> None:
    for _ in range(count):
        await read()


# -- servers --------------------------------------------------------------------------------


@contextlib.contextmanager
def process(argv: list[str], cpu: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, env=env, preexec_fn=pin(cpu), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port}") from None
            await asyncio.sleep(0.05)  # polling a starting server: there is no event to wait on


@contextlib.asynccontextmanager
async def servers(folder: Path, redis_url: str | None) -> AsyncIterator[dict[str, Server]]:
    keys = KeySet.generate(time.time())
    keys_file = folder / "keys.json"
    keys_file.write_text(keys.to_json())
    keys_file.chmod(0o600)
    env = dict(os.environ, TETHER_CONFIG_DIR=str(folder / "config"), TETHER_STATE_DIR=str(folder / "state"))
    relay_args = ["relay", "serve", "--keys", str(keys_file), "--sessions-per-address", "100000",
                  "--max-connections", "100000"]  # fmt: skip
    with contextlib.ExitStack() as stack:
        bare_port, relay_port = free_port(), free_port()
        bare = stack.enter_context(process([sys.executable, str(ROOT / "benchmarks" / "bare_forwarder.py"),
                                            str(bare_port)], 0))  # fmt: skip
        relay = stack.enter_context(process([*TETHER, *relay_args, "--port", str(relay_port)], 0, env))
        found = {
            "bare": Server("bare", f"ws://127.0.0.1:{bare_port}", f"ws://127.0.0.1:{bare_port}", bare.pid),
            "tether": Server("tether", f"ws://127.0.0.1:{relay_port}", f"ws://127.0.0.1:{relay_port}", relay.pid, keys),
        }
        ports = [bare_port, relay_port]
        if redis_url is not None:
            a, b = free_port(), free_port()
            stack.enter_context(process([*TETHER, *relay_args, "--port", str(a), "--broker", redis_url], 0, env))
            second = stack.enter_context(
                process([*TETHER, *relay_args, "--port", str(b), "--broker", redis_url], 1, env)
            )
            found["redis"] = Server("tether A/B", f"ws://127.0.0.1:{a}", f"ws://127.0.0.1:{b}", second.pid, keys)
            ports += [a, b]
        for port in ports:
            await wait_port(port)
        yield found


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with process([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--dir", str(folder)], 1):  # fmt: skip
        yield f"redis://127.0.0.1:{port}/0"


# -- the table ------------------------------------------------------------------------------


async def alternate(base: Callable[[], Awaitable[float]], relay: Callable[[], Awaitable[float]],
                    rounds: int = ROUNDS) -> tuple[float, float]:  # fmt: skip
    """Medians over ``rounds`` alternating rounds of the baseline and the relay."""
    bases, relays = [], []
    for _ in range(rounds):
        bases.append(await base())
        relays.append(await relay())
    return statistics.median(bases), statistics.median(relays)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


ROWS = ("rtt", "throughput", "big", "memory", "open", "redis", "e2e")


async def run(quick: bool, idle: int, wanted: tuple[str, ...] = ROWS) -> None:
    scale = 10 if quick else 1
    rows: list[tuple[str, str, str, str, str]] = []

    def row(figure: str, base: float, relay: float, unit: str, target: str, fmt: str = "{:,.0f}",
            added: bool = False) -> None:  # fmt: skip
        ratio = f"{relay / base if base else float('nan'):.2f}x"
        if added:  # the target is on the difference
            ratio += f" ({fmt.format(relay - base)} {unit} added)"
        rows.append((figure, f"{fmt.format(base)} {unit}", f"{fmt.format(relay)} {unit}", ratio, target))
        print(f"  measured: {figure}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="tether-bench-") as name:
        folder = Path(name)
        with redis_server(folder) as redis_url:
            async with servers(folder, redis_url) as found:
                bare, relay = found["bare"], found["tether"]
                rtt = 2000 // scale

                async def rt(server: Server, q: float) -> float:
                    return p(await round_trips(server, 1024, rtt), q) * 1e6

                if "rtt" in wanted:
                    b, r = await alternate(lambda: rt(bare, 0.5), lambda: rt(relay, 0.5))
                    row("round trip, 1 KiB, p50", b, r, "us", "<= 1.1x")
                    b, r = await alternate(lambda: rt(bare, 0.99), lambda: rt(relay, 0.99))
                    row("round trip, 1 KiB, p99", b, r, "us", "")
                for size, label in ((200, "200 B"), (8192, "8 KiB")) if "throughput" in wanted else ():
                    for sessions in (1, 100):
                        frames = (20_000 if sessions == 1 else 200) // scale

                        cpu: dict[str, list[float]] = {"bare": [], "tether": []}

                        async def tp(server: Server, size: int = size, sessions: int = sessions,
                                     frames: int = frames, cpu: dict[str, list[float]] = cpu) -> float:  # fmt: skip
                            used = cpu_seconds(server.pid)
                            rate = await throughput(server, size, sessions, frames)
                            cpu[server.name].append((cpu_seconds(server.pid) - used) / (sessions * frames) * 1e6)
                            return rate

                        b, r = await alternate(lambda: tp(bare), lambda: tp(relay), THROUGHPUT_ROUNDS)
                        row(f"{label} frames, {sessions} session{'s' if sessions > 1 else ''}", b, r, "msg/s",
                            ">= 0.9x")  # fmt: skip
                        if size == 200 and sessions == 1:
                            # One session is bound by this client's CPU, not the server's: what the server spends.
                            row("server CPU per frame forwarded, 200 B, 1 session", statistics.median(cpu["bare"]),
                                statistics.median(cpu["tether"]), "us", "", "{:.1f}")  # fmt: skip

                async def big(server: Server) -> float:
                    return statistics.median(await round_trips(server, 1_000_000, 60 // scale)) * 1e3

                if "big" in wanted:
                    b, r = await alternate(lambda: big(bare), lambda: big(relay))
                    row("1 MB frame round trip, p50", b, r, "ms", "< 5 ms", "{:.2f}")
                if "memory" in wanted:
                    # Both ends of every session are this process's sockets too: stay within its descriptors.
                    count = max(50, min(idle, (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 1000) // 2) // scale)
                    b, opened_bare = await idle_memory(bare, count)
                    r, opened_relay = await idle_memory(relay, count)
                    row(f"memory per idle session ({opened_bare:,} / {opened_relay:,} sessions)", b, r, "KB",
                        "<= 20 KB", "{:.1f}")  # fmt: skip
                if "open" in wanted:
                    n = 1000 // scale
                    b, r = await alternate(lambda: sessions_per_second(bare, n), lambda: sessions_per_second(relay, n))
                    row("sessions established per second (credentials checked)", b, r, "/s", "")
                if "redis" in found and "redis" in wanted:
                    cross = found["redis"]
                    frames = 200 // scale
                    b, r = await alternate(lambda: throughput(relay, 200, 100, frames),
                                           lambda: throughput(cross, 200, 100, frames))  # fmt: skip
                    row("via Redis: 200 B, 100 sessions (vs one process)", b, r, "msg/s", ">= 0.5x")
                    b, r = await alternate(lambda: rt(relay, 0.5), lambda: rt(cross, 0.5))
                    row("via Redis: round trip 1 KiB p50 (vs one process)", b, r, "us", "<= 300 us added", added=True)
                    assert redis_url is not None
                    latency, rate = await redis_pubsub(redis_url, 200, 20_000 // scale, 256)
                    rows.append(("redis pub/sub alone (redis-py): p50 / msg/s", f"{latency * 1e6:,.0f} us",
                                 f"{rate:,.0f} msg/s", "", "floor for the Redis path"))  # fmt: skip
    if "e2e" in wanted:
        # The cost of end-to-end encryption (issue 9): the same relay, messages plain against sealed
        # (benchmarks/e2e_cost.py has more rows), in this one table.
        import e2e_cost

        from tether.relay.server import EmbeddedRelay, RelayConfig

        async with EmbeddedRelay(RelayConfig(host="127.0.0.1", port=0)) as embedded:

            async def sealed_rt(sealed: bool) -> float:
                return p(await e2e_cost.round_trips(embedded, sealed, 1000 // scale), 0.5) * 1e6

            async def sealed_rate(sealed: bool) -> float:
                return await e2e_cost.throughput(embedded, sealed, 10_000 // scale)

            b, r = await alternate(lambda: sealed_rt(False), lambda: sealed_rt(True))
            row("end to end: round trip 1 KiB message p50 (plain vs sealed)", b, r, "us", "")
            b, r = await alternate(lambda: sealed_rate(False), lambda: sealed_rate(True))
            row("end to end: 8 KiB messages host to viewer (plain vs sealed)", b, r, "msg/s", "")
    print(f"\nrelay vs baselines, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
          f"rounds alternate, median of {ROUNDS} ({THROUGHPUT_ROUNDS} for throughput)"
          f"{' (quick)' if quick else ''}\n")  # fmt: skip
    print("| figure | baseline | tether relay | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for figure, base, relay_value, ratio, target in rows:
        print(f"| {figure} | {base} | {relay_value} | {ratio} | {target} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: a tenth of everything")
    parser.add_argument("--idle-sessions", type=int, default=10_000, help="sessions for the memory row")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=ROWS, help="measure only these rows")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Two sockets per idle session here, and two in the server: past a hard limit of 20,000
    # when allowed (root), so that the memory row reaches its 10,000 sessions.
    wanted = max(hard, 2 * args.idle_sessions + 1000)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pin(1)()
    asyncio.run(run(args.quick, args.idle_sessions, tuple(args.rows)))


if __name__ == "__main__":
    main()

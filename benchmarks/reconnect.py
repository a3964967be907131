"""Reconnection: from the network restored to a live session again (DESIGN.md rule 7; issue 10).

A real `tether relay serve`, a real `tether rc` (scripted ACP agent) that reaches the relay through a
fault-injecting TCP proxy, and a scripted viewer that reaches the relay directly. Each trial: the proxy
cuts the host's connection and refuses new ones for a random 0.3-3 s outage (the viewer is told 4503
`host away`), then lets traffic through again (t0). Measured from t0:

- host back: `tether rc` says `relay link back` (its own jittered backoff, up to 1 s between attempts);
- live: the host is back AND the viewer device came back (its resume secret, no question) and a prompt
  made the round trip (prompt -> agent -> reply on the viewer). The viewer here retries every 50 ms (the
  page backs off from 0.5 s; this measures when the session is ready, not the page's patience).

Targets (issue 10): live median < 0.5 s, p99 < 2 s.
Run: ``.venv/bin/python benchmarks/reconnect.py [TRIALS]`` (part of ``make bench``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fault_proxy import FaultProxy  # noqa: E402

from tether.host.device import Devices, login  # noqa: E402
from tether.host.trust import TrustStore  # noqa: E402
from tether.relay.accounts import AccountStore  # noqa: E402
from tether.testing import ViewerClient  # noqa: E402

AGENT = f"{sys.executable} {ROOT / 'tests' / 'agents' / 'scripted_agent.py'}"
TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_relay(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    relay = subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "relay", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return relay
        time.sleep(0.05)
    raise RuntimeError("the relay did not start")


def register(state: Path, relay_url: str) -> None:
    """This machine's device, logged in to the relay (an invite, then the real login over HTTP)."""
    store = AccountStore(f"sqlite:///{state / 'relay.db'}")
    try:
        store.migrate()
        code = store.invite("bench", time.time(), os.urandom, 3600)
    finally:
        store.close()
    login(f"{relay_url}/login#{code}", Devices(state, use_keyring=False))


async def until_line(stream: asyncio.StreamReader, marker: str) -> None:
    while True:
        line = await asyncio.wait_for(stream.readline(), 30)
        if not line:
            raise RuntimeError(f"tether rc ended before {marker!r}")
        if marker.encode() in line:
            return


async def live_again(url: str, resume: dict[str, Any], text: str) -> ViewerClient:
    """The viewer device back and a round trip done; retries every 50 ms while the host is not back."""
    while True:
        viewer = ViewerClient(url, **resume, wait_admitted=False)
        await viewer.__aenter__()
        await viewer.wait_for(lambda v: v.admitted or v.closed or v.refused, 10)
        if viewer.admitted:
            await viewer.prompt(f"say {text}")
            await viewer.wait_for(lambda v: text in v.texts("agent"), 10)
            return viewer
        await viewer.__aexit__(None, None, None)
        await asyncio.sleep(0.05)


async def timed(work: Any, started: float, into: list[float]) -> None:
    await work
    into.append(time.perf_counter() - started)


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"{name:<12} median {statistics.median(values) * 1000:7.0f} ms   p99 {p99 * 1000:7.0f} ms   "
            f"min {ordered[0] * 1000:5.0f} ms   max {ordered[-1] * 1000:6.0f} ms")  # fmt: skip


async def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        state = base / "state"
        env = dict(os.environ, TETHER_STATE_DIR=str(state), TETHER_CONFIG_DIR=str(base / "config"), TETHER_KEYRING="0")
        folder = base / "project"
        folder.mkdir()
        TrustStore(state / "trust.json").trust(folder)
        port = free_port()
        relay = start_relay(env, port)
        try:
            async with FaultProxy("127.0.0.1", port) as proxy:
                host_side = f"http://127.0.0.1:{proxy.port}"
                os.environ["TETHER_STATE_DIR"] = str(state)  # login() writes this machine's device there
                await asyncio.to_thread(register, state, host_side)
                rc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tether.cli.main", "rc", "--relay", host_side, "--agent", AGENT, "--json",
                    "--accept-device", cwd=folder, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )  # fmt: skip
                assert rc.stdout is not None and rc.stderr is not None
                url = json.loads(await asyncio.wait_for(rc.stdout.readline(), 60))["url"]
                url = url.replace(f":{proxy.port}/", f":{port}/")  # the viewer reaches the relay directly
                viewer = await live_again(url, {}, "hello")
                resume = viewer.rejoin()
                host_back: list[float] = []
                live: list[float] = []
                for trial in range(TRIALS):
                    proxy.hold()
                    await viewer.wait_for(lambda v: v.closed, 10)  # 4503: host away
                    await viewer.__aexit__(None, None, None)
                    await until_line(rc.stderr, "relay link lost")
                    await asyncio.sleep(random.uniform(0.3, 3.0))
                    proxy.release()
                    started = time.perf_counter()
                    host = asyncio.ensure_future(timed(until_line(rc.stderr, "relay link back"), started, host_back))
                    viewer = await live_again(url, resume, f"trial {trial}")
                    live.append(time.perf_counter() - started)
                    await host
                    resume = viewer.rejoin()
                await viewer.__aexit__(None, None, None)
                rc.terminate()
                await rc.wait()
        finally:
            relay.terminate()
            relay.wait()
    print(f"reconnect: {TRIALS} outages of 0.3-3 s (host link cut, new connections refused), then released")
    print(summary("host back", host_back))
    print(summary("live again", live))
    print("targets: live again median < 500 ms, p99 < 2000 ms")


if __name__ == "__main__":
    asyncio.run(main())

"""Two real relay processes sharing sessions through a real redis-server (`--broker redis://...`).

A host attached to one process and its viewer attached to the other talk as if they were
on one relay: peer messages, frames both ways in order, the session ending with its host.
Credentials are shared: the join token one process minted works on the other, and a
single-use token used on one is refused on the other. Redis holds no message content.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import websockets

from tests.conftest import UNIT, free_port
from tests.integration.relay_process import (
    RelayProcess,
    control,
    open_host,
    open_viewer,
    relay_process,
)
from tests.support.redis_server import redis_server
from tether.auth.keys import KeySet


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """One redis-server for the module."""
    with redis_server() as url:
        yield url


@pytest.fixture(scope="module")
def keys() -> KeySet:
    """The key set every relay of the module signs with."""
    return KeySet.generate(time.time())


@pytest.fixture(scope="module")
def relays(
    redis_url: str, keys: KeySet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RelayProcess, RelayProcess]]:
    """Two `tether relay serve --broker redis://...` processes signing with one key set."""
    folder = tmp_path_factory.mktemp("relays")
    env = dict(os.environ, TETHER_CONFIG_DIR=str(folder / "config"), TETHER_STATE_DIR=str(folder / "state"))
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(
            relay_process(folder, env, "--broker", redis_url, "--sessions-per-address", "1000", keys=keys)
        )
        second = stack.enter_context(
            relay_process(folder, env, "--broker", redis_url, "--sessions-per-address", "1000", keys=keys)
        )
        yield first, second


async def binary(ws: websockets.ClientConnection, within: float = 5 * UNIT) -> bytes:
    """The next binary frame (control messages before it are skipped)."""
    async with asyncio.timeout(within):
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                return message


async def closed(ws: websockets.ClientConnection, within: float = 5 * UNIT) -> int | None:
    """Read until the relay closes ``ws``: its close code."""
    async with asyncio.timeout(within):
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await ws.recv()
    return ws.close_code


async def test_a_host_on_one_relay_and_its_viewer_on_another_talk(relays: tuple[RelayProcess, RelayProcess]) -> None:
    """Both ends hear `peer joined`, frames cross both ways in order, and the host leaving closes the viewer 4000."""
    first, second = relays
    session_id, host, join = await open_host(first)
    viewer = await open_viewer(second, session_id, join)
    assert {"type": "peer", "role": "viewer", "state": "joined"} == await control(host, "peer")
    assert {"type": "peer", "role": "host", "state": "joined"} == await control(viewer, "peer")
    for n in range(50):
        await host.send(f"down {n}".encode())
        await viewer.send(f"up {n}".encode())
    assert [f"down {n}".encode() for n in range(50)] == [await binary(viewer) for _ in range(50)]
    assert [f"up {n}".encode() for n in range(50)] == [await binary(host) for _ in range(50)]
    await host.close()
    assert 4000 == await closed(viewer)


async def test_a_host_lost_on_one_relay_closes_its_viewer_on_another_host_away(
    relays: tuple[RelayProcess, RelayProcess],
) -> None:
    """A host gone without a close frame (its TCP reset) is not an end: its viewer on the other relay hears 4503."""
    first, second = relays
    session_id, host, join = await open_host(first)
    viewer = await open_viewer(second, session_id, join)
    assert {"type": "peer", "role": "host", "state": "joined"} == await control(viewer, "peer")
    host.transport.abort()
    assert 4503 == await closed(viewer)


async def test_a_viewer_leaving_frees_the_seat_across_processes(relays: tuple[RelayProcess, RelayProcess]) -> None:
    """A second viewer is refused busy (on the other process too); once the first left, the host hears `left`."""
    first, second = relays
    session_id, host, join = await open_host(first)
    viewer = await open_viewer(second, session_id, join)
    await control(host, "peer")
    intruder = await open_viewer(first, session_id, join)
    assert 4409 == await closed(intruder)
    await viewer.close()
    assert {"type": "peer", "role": "viewer", "state": "left"} == await control(host, "peer")
    await host.close()


async def test_an_initiation_token_works_once_across_processes(relays: tuple[RelayProcess, RelayProcess]) -> None:
    """A session-initiation token used on one process is refused 4401 on the other (single use, shared in Redis)."""
    first, second = relays
    token = first.initiation_token()
    headers = {"Authorization": f"Bearer {token}"}
    host = await websockets.connect(
        f"{first.ws_url}/v1/host/{secrets.token_urlsafe(16)}", additional_headers=headers, open_timeout=5 * UNIT
    )
    await control(host, "credentials")
    replay = await websockets.connect(
        f"{second.ws_url}/v1/host/{secrets.token_urlsafe(16)}", additional_headers=headers, open_timeout=5 * UNIT
    )
    assert 4401 == await closed(replay)
    await host.close()


async def test_a_join_token_dies_with_its_session_on_every_process(relays: tuple[RelayProcess, RelayProcess]) -> None:
    """After the host left (from one process), its join link admits no one on the other (4404: no host holds it)."""
    first, second = relays
    session_id, host, join = await open_host(first)
    await host.close()
    _, again, _ = await open_host(first)  # a round trip on the first process: its leave is done
    await again.close()
    late = await open_viewer(second, session_id, join)
    assert 4404 == await closed(late)


async def test_both_ends_renewing_at_once_on_two_relays_fence_neither(
    relays: tuple[RelayProcess, RelayProcess],
) -> None:
    """Host and viewer renew at the same moments on different relays, many times: every renewal is granted."""
    first, second = relays
    session_id, host, join = await open_host(first)
    viewer = await open_viewer(second, session_id, join)
    await control(host, "peer")
    await control(viewer, "peer")
    renew = json.dumps({"type": "renew"})
    for _ in range(30):
        await asyncio.gather(host.send(renew), viewer.send(renew))
        await asyncio.gather(control(host, "credentials"), control(viewer, "credentials"))
    await host.send(b"after")
    assert b"after" == await binary(viewer)
    await host.close()
    assert 4000 == await closed(viewer)


async def test_redis_keeps_no_message_content(relays: tuple[RelayProcess, RelayProcess], redis_url: str) -> None:
    """While frames cross, no key in Redis holds any of them; once the session ends, none of its keys stays."""
    first, second = relays
    marker = secrets.token_hex(16).encode()
    session_id, host, join = await open_host(first)
    viewer = await open_viewer(second, session_id, join)
    await control(host, "peer")
    for _ in range(20):
        await viewer.send(marker)
    assert [marker] * 20 == [await binary(host) for _ in range(20)]
    client = redis.Redis.from_url(redis_url)
    try:
        values = [bytes(client.dump(key) or b"") for key in client.scan_iter("*")]  # type: ignore[arg-type]
        assert not [value for value in values if marker in value]
        assert any(session_id.encode() in key for key in client.scan_iter("*"))
        await viewer.close()
        await host.close()
        _, again, _ = await open_host(first)
        await again.close()
        assert [] == [key for key in client.scan_iter("*") if session_id.encode() in key]
    finally:
        client.close()


async def test_many_sessions_across_two_relays_lose_and_cross_nothing(
    relays: tuple[RelayProcess, RelayProcess],
) -> None:
    """400 live sessions over both processes, all sending at once: every frame arrives, in order, in its own session."""
    first, second = relays
    count, frames = 400, 10
    opening = asyncio.Semaphore(32)  # sessions open a few at a time, as users arrive; then all talk at once

    async def open_one(n: int) -> tuple[str, websockets.ClientConnection, websockets.ClientConnection]:
        host_relay, viewer_relay = (first, second) if n % 2 else (second, first)
        async with opening:
            session_id, host, join = await open_host(host_relay)
            viewer = await open_viewer(viewer_relay, session_id, join)
            await control(viewer, "peer", 20 * UNIT)
            await control(host, "peer", 20 * UNIT)
        return session_id, host, viewer

    async def talk(session_id: str, host: websockets.ClientConnection, viewer: websockets.ClientConnection) -> bool:
        for i in range(frames):
            await viewer.send(f"{session_id} {i}".encode())
            await host.send(f"{session_id} -{i}".encode())
        up = [await binary(host, 20 * UNIT) for _ in range(frames)]
        down = [await binary(viewer, 20 * UNIT) for _ in range(frames)]
        await viewer.close()
        await host.close()
        return (
            [f"{session_id} {i}".encode() for i in range(frames)],
            [f"{session_id} -{i}".encode() for i in range(frames)],
        ) == (up, down)

    sessions = await asyncio.gather(*(open_one(n) for n in range(count)))
    results = await asyncio.gather(*(talk(*session) for session in sessions))
    assert [True] * count == results


async def _live_session(host_relay: RelayProcess, viewer_relay: RelayProcess) -> Held:
    """A session with both ends joined, and both ends' routing tokens."""
    session_id, host, join = await open_host(host_relay)
    viewer = await open_viewer(viewer_relay, session_id, join)
    viewer_token = (await control(viewer, "credentials"))["routing"]
    await control(host, "peer")
    await control(viewer, "peer")
    await host.send(json.dumps({"type": "renew"}))
    return Held(session_id, host, viewer, (await control(host, "credentials"))["routing"], viewer_token)


@dataclass
class Held:
    """A live session as the test holds it."""

    session_id: str
    host: websockets.ClientConnection
    viewer: websockets.ClientConnection
    host_token: str
    viewer_token: str


async def _come_back(held: Held, host_relay: RelayProcess, viewer_relay: RelayProcess) -> None:
    """Reconnect both ends with their routing tokens (the host first); both hear the other join; a frame crosses."""
    # The dead relay's ends count until its liveness key lapses (NODE_TTL): until then the
    # session is busy. Polling: the event is a key expiring inside Redis.
    async with asyncio.timeout(20 * UNIT):
        while True:
            bearer = {"Authorization": f"Bearer {held.host_token}"}
            host = await websockets.connect(f"{host_relay.ws_url}/v1/host/{held.session_id}", additional_headers=bearer)
            try:
                await control(host, "credentials")
                break
            except websockets.ConnectionClosed:
                assert 4409 == host.close_code
                await asyncio.sleep(0.2)
    viewer = await websockets.connect(f"{viewer_relay.ws_url}/v1/viewer/{held.session_id}")
    await viewer.send(json.dumps({"type": "join", "token": held.viewer_token}))
    assert {"type": "peer", "role": "host", "state": "joined"} == await control(viewer, "peer")
    assert {"type": "peer", "role": "viewer", "state": "joined"} == await control(host, "peer")
    await host.send(b"still here")
    assert b"still here" == await binary(viewer)
    await host.close()
    assert 4000 == await closed(viewer)


async def test_a_session_carries_on_through_another_relay_when_its_relay_dies(
    relays: tuple[RelayProcess, RelayProcess], redis_url: str, keys: KeySet, tmp_path: Path, tether_env: dict[str, str]
) -> None:
    """Ends on a relay killed with SIGKILL come back through the others with their routing tokens.

    One session had both ends there; another only its host, and its viewer (on a relay
    that lives) is sent away 1001 when the host comes back, so that it rejoins too.
    """
    first, second = relays
    with relay_process(tmp_path, tether_env, "--broker", redis_url, keys=keys) as doomed:
        both = await _live_session(doomed, doomed)
        split = await _live_session(doomed, second)
        doomed.process.send_signal(signal.SIGKILL)
        assert 1006 == await closed(both.host, 10 * UNIT)
    await _come_back(both, first, second)
    await _come_back_split(split, first, second)


async def _come_back_split(held: Held, host_relay: RelayProcess, viewer_relay: RelayProcess) -> None:
    waiting = asyncio.create_task(closed(held.viewer, 30 * UNIT))
    await _come_back(held, host_relay, viewer_relay)
    # 4503 when the host came back while its dead relay's ends still counted (it replaces its old end:
    # routing's RETURN); 1001 once they no longer did. Either way the viewer rejoins.
    assert await waiting in (1001, 4503)


async def _ready(relay: RelayProcess) -> int:
    async with httpx.AsyncClient(timeout=5 * UNIT) as client:
        return (await client.get(f"{relay.url}/readyz")).status_code


async def test_relays_ride_out_a_redis_restart(keys: KeySet, tmp_path: Path, tether_env: dict[str, str]) -> None:
    """Redis stopped: /readyz says 503; Redis back on its port: the relays subscribe again, and sessions cross again."""
    port = free_port()
    first_redis = redis_server(port)
    url = first_redis.__enter__()
    try:
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(relay_process(tmp_path, tether_env, "--broker", url, keys=keys))
            second = stack.enter_context(relay_process(tmp_path, tether_env, "--broker", url, keys=keys))
            first_redis.__exit__(None, None, None)
            first_redis = None
            assert (503, 503) == (await _ready(first), await _ready(second))
            with redis_server(port):
                # Polling: the event is redis-py's reconnection inside each relay process.
                async with asyncio.timeout(20 * UNIT):
                    while True:
                        if (await _ready(first), await _ready(second)) == (200, 200):
                            break
                        await asyncio.sleep(0.1)
                session_id, host, join = await open_host(first)
                viewer = await open_viewer(second, session_id, join)
                assert {"type": "peer", "role": "host", "state": "joined"} == await control(viewer, "peer")
                await host.send(b"after the restart")
                assert b"after the restart" == await binary(viewer)
                await host.close()
                assert 4000 == await closed(viewer)
    finally:
        if first_redis is not None:
            first_redis.__exit__(None, None, None)


def test_relay_serve_refuses_an_unreachable_redis(tmp_path: Path) -> None:
    """`--broker redis://` with no Redis there stops `relay serve` with a one-line error, no traceback."""
    import subprocess

    from tests.conftest import TETHER, free_port

    env = dict(os.environ, TETHER_CONFIG_DIR=str(tmp_path / "c"), TETHER_STATE_DIR=str(tmp_path / "s"))
    result = subprocess.run(
        [*TETHER, "relay", "serve", "--port", str(free_port()), "--broker", f"redis://127.0.0.1:{free_port()}/0"],
        env=env, capture_output=True, text=True, timeout=30 * UNIT,
    )  # fmt: skip
    assert 0 != result.returncode
    assert "Redis" in result.stderr and "Traceback" not in result.stderr

"""Two real relay processes sharing sessions through a real redis-server (`--broker redis://...`).

A host attached to one process and its viewer attached to the other talk as if they were
on one relay: peer messages, frames both ways in order, the session ending with its host.
Credentials are shared: the join token one process minted works on the other, and a
single-use token used on one is refused on the other. Redis holds no message content.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import websockets

from tests.conftest import UNIT
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
def relays(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RelayProcess, RelayProcess]]:
    """Two `tether relay serve --broker redis://...` processes signing with one key set."""
    keys = KeySet.generate(time.time())
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
    """After the host left (from one process), its join link is refused 4401 by the other."""
    first, second = relays
    session_id, host, join = await open_host(first)
    await host.close()
    _, again, _ = await open_host(first)  # a round trip on the first process: its leave is done
    await again.close()
    late = await open_viewer(second, session_id, join)
    assert 4401 == await closed(late)


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
    """Hundreds of sessions, hosts and viewers spread over both processes: every frame arrives, in its own session."""
    first, second = relays
    count, frames = 300, 10

    async def one(n: int) -> bool:
        host_relay, viewer_relay = (first, second) if n % 2 else (second, first)
        session_id, host, join = await open_host(host_relay)
        viewer = await open_viewer(viewer_relay, session_id, join)
        await control(viewer, "peer", 20 * UNIT)
        await control(host, "peer", 20 * UNIT)
        for i in range(frames):
            await viewer.send(f"{session_id} {i}".encode())
        got = [await binary(host, 20 * UNIT) for _ in range(frames)]
        await viewer.close()
        await host.close()
        return [f"{session_id} {i}".encode() for i in range(frames)] == got

    results = await asyncio.gather(*(one(n) for n in range(count)))
    assert [True] * count == results


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

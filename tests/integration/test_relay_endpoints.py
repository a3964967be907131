"""The relay with real sockets: forwarding, routing refusals, bad input, and the end of a session."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import UNIT
from tether.relay.server import EmbeddedRelay, RelayConfig

MAX_FRAME = 64 * 1024 + 64


@pytest.fixture
async def relay() -> AsyncIterator[EmbeddedRelay]:
    async with EmbeddedRelay(RelayConfig(port=0, max_frame_bytes=MAX_FRAME)) as embedded:
        yield embedded


def ws_url(relay: EmbeddedRelay, role: str, session_id: str) -> str:
    return relay.url.replace("http", "ws", 1) + f"/v1/{role}/{session_id}"


async def connect(relay: EmbeddedRelay, role: str, session_id: str) -> ClientConnection:
    return await websockets.connect(ws_url(relay, role, session_id), compression=None, max_size=2 * MAX_FRAME)


async def close_code(ws: ClientConnection) -> int | None:
    """Wait for the relay to close ``ws``; its close code."""
    with pytest.raises(websockets.ConnectionClosed):
        async with asyncio.timeout(5 * UNIT):
            while True:
                await ws.recv()
    return ws.close_code


async def pair(relay: EmbeddedRelay) -> tuple[str, ClientConnection, ClientConnection]:
    """A session with a host and a viewer, both past their ``peer joined`` notices."""
    session_id = secrets.token_urlsafe(16)
    host = await connect(relay, "host", session_id)
    viewer = await connect(relay, "viewer", session_id)
    assert {"type": "peer", "role": "host", "state": "joined"} == json.loads(await viewer.recv())
    assert {"type": "peer", "role": "viewer", "state": "joined"} == json.loads(await host.recv())
    return session_id, host, viewer


async def health(relay: EmbeddedRelay) -> dict[str, object]:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{relay.url}/healthz")).json()  # type: ignore[no-any-return]


async def test_frames_are_forwarded_byte_for_byte_both_ways(relay: EmbeddedRelay) -> None:
    """Binary frames cross unchanged, in order, whatever they contain."""
    _, host, viewer = await pair(relay)
    payloads = [b"", b"\x00\xff" * 10, secrets.token_bytes(MAX_FRAME - 64)]
    for payload in payloads:
        await host.send(payload)
        await viewer.send(payload[::-1])
    assert payloads == [await viewer.recv() for _ in payloads]
    assert [p[::-1] for p in payloads] == [await host.recv() for _ in payloads]
    await host.close()
    await viewer.close()


async def test_unknown_session_is_refused(relay: EmbeddedRelay) -> None:
    """A viewer for a session no host holds gets 4404."""
    viewer = await connect(relay, "viewer", secrets.token_urlsafe(16))
    assert 4404 == await close_code(viewer)


@pytest.mark.parametrize("role", ["host", "viewer"])
async def test_each_role_is_taken_once(relay: EmbeddedRelay, role: str) -> None:
    """A second host or a second viewer of a session gets 4409 (one controlling viewer)."""
    session_id, host, viewer = await pair(relay)
    second = await connect(relay, role, session_id)
    assert 4409 == await close_code(second)
    await host.send(b"still paired")
    assert b"still paired" == await viewer.recv()


@pytest.mark.parametrize("session_id", ["short", "has spaces and more chars", "x" * 65, "semi;colon-is-not-ok"])
async def test_bad_session_ids_are_refused(relay: EmbeddedRelay, session_id: str) -> None:
    """Malformed session ids get 4400."""
    ws = await websockets.connect(ws_url(relay, "host", session_id.replace(" ", "%20")), compression=None)
    assert 4400 == await close_code(ws)


async def test_oversized_frame_closes_that_connection_only(relay: EmbeddedRelay) -> None:
    """A frame over the limit closes its sender with 1009; other sessions keep working."""
    _, host, viewer = await pair(relay)
    _, other_host, other_viewer = await pair(relay)
    await viewer.send(b"x" * (MAX_FRAME + 1))
    assert 1009 == await close_code(viewer)
    await other_host.send(b"unaffected")
    assert b"unaffected" == await other_viewer.recv()
    await asyncio.sleep(0.1 * UNIT)
    assert 1 == (await health(relay))["drops"]["oversized"]  # type: ignore[index]
    await host.close()


async def test_text_frames_get_an_error_and_are_counted(relay: EmbeddedRelay) -> None:
    """Garbage in a text frame is answered with an error; the connection and session stay up."""
    _, host, viewer = await pair(relay)
    await viewer.send("{not json at all")
    error = json.loads(await viewer.recv())
    assert ("error", "malformed") == (error["type"], error["reason"])
    await viewer.send(b"after the garbage")
    assert b"after the garbage" == await host.recv()
    assert 1 == (await health(relay))["drops"]["malformed"]  # type: ignore[index]


async def test_host_leaving_ends_the_session_at_once(relay: EmbeddedRelay) -> None:
    """The viewer gets what the host sent last, then 4000; the relay forgets the session."""
    session_id, host, viewer = await pair(relay)
    await host.send(b"last words")
    await host.close()
    assert b"last words" == await viewer.recv()
    assert 4000 == await close_code(viewer)
    assert 0 == (await health(relay))["sessions"]
    late = await connect(relay, "viewer", session_id)
    assert 4404 == await close_code(late)


async def test_viewer_leaving_is_told_to_the_host(relay: EmbeddedRelay) -> None:
    """The host hears `left`, and a new viewer can join the same session."""
    session_id, host, viewer = await pair(relay)
    await viewer.close()
    assert {"type": "peer", "role": "viewer", "state": "left"} == json.loads(await host.recv())
    again = await connect(relay, "viewer", session_id)
    assert "joined" == json.loads(await again.recv())["state"]


async def test_a_flood_from_one_session_does_not_stop_another(relay: EmbeddedRelay) -> None:
    """Thousands of frames through one session; a second session's frame still arrives promptly."""
    _, host, viewer = await pair(relay)
    _, other_host, other_viewer = await pair(relay)
    flood = asyncio.gather(*(host.send(b"f" * 1024) for _ in range(2000)))
    await other_host.send(b"ping")
    assert b"ping" == await asyncio.wait_for(other_viewer.recv(), 5 * UNIT)
    await flood
    received = 0
    while received < 2000:
        await asyncio.wait_for(viewer.recv(), 5 * UNIT)
        received += 1
    assert 2000 == received


async def test_viewer_page_is_served_with_strict_headers(relay: EmbeddedRelay) -> None:
    """/s/<id> serves the viewer with a CSP that allows only this origin, and no referrer."""
    async with httpx.AsyncClient() as client:
        page = await client.get(f"{relay.url}/s/{secrets.token_urlsafe(16)}")
        assert 200 == page.status_code and 'data-testid="prompt-input"' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "no-referrer" == page.headers["referrer-policy"]
        assert 200 == (await client.get(f"{relay.url}/assets/app.js")).status_code

"""Admission at a real relay: no slot without a credential, tokens scoped, renewed in-band, lapsing."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import UNIT
from tether.relay.server import EmbeddedRelay, RelayConfig
from tether.testing import initiation_token


class Clock:
    """The relay's clock, moved by the test: token lifetimes pass in microseconds."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def relay(clock: Clock) -> AsyncIterator[EmbeddedRelay]:
    config = RelayConfig(port=0, routing_lifetime=600.0, join_timeout=2.0 * UNIT)
    async with EmbeddedRelay(config, clock=clock) as embedded:
        yield embedded


def ws_url(relay: EmbeddedRelay, role: str, session_id: str) -> str:
    return relay.url.replace("http://", "ws://", 1) + f"/v1/{role}/{session_id}"


async def text(ws: ClientConnection) -> dict[str, Any]:
    """The next relay control message (binary frames are skipped)."""
    async with asyncio.timeout(5 * UNIT):
        while True:
            data = await ws.recv()
            if isinstance(data, str):
                message: dict[str, Any] = json.loads(data)
                return message


async def close_code(ws: ClientConnection) -> int | None:
    async with asyncio.timeout(10 * UNIT):
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            return ws.close_code


async def host(relay: EmbeddedRelay, session_id: str, token: str | None = None) -> tuple[ClientConnection, dict]:
    token = token or initiation_token(relay.admission)
    ws = await websockets.connect(
        ws_url(relay, "host", session_id), additional_headers={"Authorization": f"Bearer {token}"}
    )
    return ws, await text(ws)


async def viewer(relay: EmbeddedRelay, session_id: str, token: str) -> ClientConnection:
    ws = await websockets.connect(ws_url(relay, "viewer", session_id))
    await ws.send(json.dumps({"type": "join", "token": token}))
    return ws


async def both_ends(relay: EmbeddedRelay) -> tuple[ClientConnection, ClientConnection]:
    """A new session's host and viewer, attached, past their credentials and `peer joined` messages."""
    session_id = secrets.token_urlsafe(16)
    ws, given = await host(relay, session_id)
    view = await viewer(relay, session_id, given["join"])
    await text(view)  # its credentials
    await text(view)  # peer joined
    await text(ws)  # peer joined
    return ws, view


async def test_a_host_without_a_token_is_refused_4401(relay: EmbeddedRelay) -> None:
    """No Authorization header, or a garbage one: 4401, counted; the session never exists."""
    session_id = secrets.token_urlsafe(16)
    bare = await websockets.connect(ws_url(relay, "host", session_id))
    assert 4401 == await close_code(bare)
    forged = await websockets.connect(
        ws_url(relay, "host", session_id), additional_headers={"Authorization": "Bearer v4.public.x.y"}
    )
    assert 4401 == await close_code(forged)
    assert 0 == await relay.broker.session_count()


async def test_a_viewer_without_the_join_token_cannot_squat_the_slot(relay: EmbeddedRelay) -> None:
    """Connections that present nothing (or wait) hold no slot: the real viewer still joins."""
    session_id = secrets.token_urlsafe(16)
    ws, given = await host(relay, session_id)
    squatter = await websockets.connect(ws_url(relay, "viewer", session_id))  # says nothing at all
    wrong = await viewer(relay, session_id, given["routing"])  # the host's token, wrong purpose
    real = await viewer(relay, session_id, given["join"])
    assert "credentials" == (await text(real))["type"]
    assert {"type": "peer", "role": "host", "state": "joined"} == await text(real)
    assert 4401 == await close_code(wrong)
    assert 4401 == await close_code(squatter)  # after join_timeout
    await ws.close()


async def test_an_initiation_token_works_once(relay: EmbeddedRelay) -> None:
    """The same session-initiation token cannot register a second session."""
    token = initiation_token(relay.admission)
    first, _ = await host(relay, secrets.token_urlsafe(16), token)
    second = await websockets.connect(ws_url(relay, "host", secrets.token_urlsafe(16)),
                                      additional_headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert 4401 == await close_code(second)
    await first.close()


async def test_the_join_token_dies_with_the_session(relay: EmbeddedRelay) -> None:
    """After the host leaves, the session's join token admits no one, even to a new session of that id."""
    session_id = secrets.token_urlsafe(16)
    ws, given = await host(relay, session_id)
    await ws.close()
    again, _ = await host(relay, session_id)
    late = await viewer(relay, session_id, given["join"])
    assert 4401 == await close_code(late)
    await again.close()


async def test_renewed_in_band_a_session_outlives_its_routing_tokens(relay: EmbeddedRelay, clock: Clock) -> None:
    """Renewing before each expiry keeps both ends connected over several routing lifetimes (clock moved)."""
    ws, view = await both_ends(relay)
    for _ in range(6):  # 6 x 400 s: four whole lifetimes of 600 s
        clock.now += 400
        for end in (ws, view):
            await end.send(json.dumps({"type": "renew"}))
            renewed = await text(end)
            assert "credentials" == renewed["type"]
        await ws.send(b"still here")
        assert b"still here" == await asyncio.wait_for(view.recv(), 5 * UNIT)
    await ws.close()


async def test_each_renewal_gives_the_host_a_fresh_join_token_for_the_links_it_shows_later(
    relay: EmbeddedRelay, clock: Clock
) -> None:
    """Past the first join token's 10 minutes a viewer can still join, with the one the host's last renewal
    brought (the URL printed when the pairing secret rotates); the first one is refused."""
    session_id = secrets.token_urlsafe(16)
    ws, given = await host(relay, session_id)
    clock.now += 400
    await ws.send(json.dumps({"type": "renew"}))
    renewed = await text(ws)
    assert isinstance(renewed.get("join"), str) and renewed["join"] != given["join"]
    clock.now += 400  # the first join token (600 s) has lapsed; the renewed one has 200 s left
    assert 4401 == await close_code(await viewer(relay, session_id, given["join"]))
    late = await viewer(relay, session_id, renewed["join"])
    assert "credentials" == (await text(late))["type"]
    await late.close()
    await ws.close()


async def test_a_ping_is_answered_pong_at_once_and_anything_else_is_still_refused(relay: EmbeddedRelay) -> None:
    """The page's heartbeat (browsers cannot send WebSocket pings): each end gets its pong; near misses are not."""
    ws, view = await both_ends(relay)
    for end in (view, ws):
        await end.send(json.dumps({"type": "ping"}))
        assert {"type": "pong"} == await text(end)
    await view.send(json.dumps({"type": "ping", "x": 1}))
    assert "error" == (await text(view))["type"]
    await ws.close()


async def test_a_lapsed_routing_token_closes_the_connection_4401(clock: Clock) -> None:
    """An end that does not renew is closed 4401 when its routing token expires."""
    config = RelayConfig(port=0, routing_lifetime=1.0 * UNIT)
    async with EmbeddedRelay(config, clock=clock) as short:
        ws, _ = await host(short, secrets.token_urlsafe(16))
        assert 4401 == await close_code(ws)


async def test_a_stale_renewal_is_refused(relay: EmbeddedRelay, clock: Clock) -> None:
    """Renewing after the routing token lapsed (by the clock) closes the end 4401."""
    ws, _ = await host(relay, secrets.token_urlsafe(16))
    clock.now += 601
    await ws.send(json.dumps({"type": "renew"}))
    assert 4401 == await close_code(ws)


async def test_login_and_initiate_refuse_what_they_should(relay: EmbeddedRelay) -> None:
    """Without an account store nobody logs in; garbage is a 400, not a traceback."""
    async with httpx.AsyncClient(base_url=relay.url) as client:
        assert 401 == (await client.post("/v1/login", json={"invite": "x", "public_key": "AAAA"})).status_code
        assert 400 == (await client.post("/v1/initiate", content=b"{not json")).status_code
        assert 400 == (await client.post("/v1/initiate", json={"proof": {"device": "x"}})).status_code

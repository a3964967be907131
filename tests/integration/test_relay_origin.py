"""The relay admits browsers only from its own origin, and its page may connect only there (issue 9).

A browser opens a WebSocket to any address a page names and sends the page's Origin
with it; only the relay can refuse. Hosts are not browsers: they send no Origin and
keep working. The relay's own origin is the address the connection came to (its Host,
loopback names counting as one) or its configured public URL (a tunnel or a proxy in
front may rewrite the Host).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from websockets.typing import Origin

from tests.conftest import UNIT
from tests.integration.test_relay import connect, control, new_id
from tether.relay.server import EmbeddedRelay, RelayConfig

TOKEN = "operator-secret-for-origin-tests"


@pytest.fixture
async def relay() -> AsyncIterator[EmbeddedRelay]:
    """An embedded relay on 127.0.0.1 with no public URL."""
    async with EmbeddedRelay(RelayConfig(port=0, operator_token=TOKEN)) as embedded:
        yield embedded


async def drops(relay: EmbeddedRelay) -> dict[str, int]:
    """The relay's drop counters, as its operator reads them."""
    return dict(relay.broker.counters.snapshot())


async def viewer_with_origin(relay: EmbeddedRelay, origin: str, base: str | None = None) -> str:
    """Open a session, then its viewer with ``origin`` (to ``base``, default the relay's URL): joined or refused."""
    session_id = new_id()
    host = await connect(relay, "host", session_id)
    try:
        url = (base or relay.url).replace("http://", "ws://", 1)
        viewer = await connect(relay, "viewer", session_id, origin=Origin(origin)) if base is None else None
        if viewer is None:
            viewer = await websockets.connect(
                f"{url}/v1/viewer/{session_id}", origin=Origin(origin), open_timeout=5 * UNIT
            )
            await viewer.close()
            return "accepted"
        try:
            return "joined" if {"type": "peer", "role": "host", "state": "joined"} == await control(viewer) else "?"
        finally:
            await viewer.close()
    except websockets.InvalidStatus as refused:
        return f"refused {refused.response.status_code}"
    finally:
        await host.close()


async def test_a_viewer_from_another_origin_is_refused_and_counted(relay: EmbeddedRelay) -> None:
    """A page on another site cannot open a viewer connection: 403 before any credential, counted bad_origin."""
    assert "refused 403" == await viewer_with_origin(relay, "https://evil.example")
    assert "refused 403" == await viewer_with_origin(relay, "null")  # sandboxed frames, file: pages
    assert 2 == (await drops(relay))["bad_origin"]


async def test_another_port_on_this_machine_is_another_origin(relay: EmbeddedRelay) -> None:
    """A local web server on another port (any dev server) is refused like any other site."""
    port = int(relay.url.rsplit(":", 1)[1])
    assert "refused 403" == await viewer_with_origin(relay, f"http://127.0.0.1:{port + 1}")
    assert "refused 403" == await viewer_with_origin(relay, f"http://localhost:{port + 1}")


async def test_the_relays_own_page_may_connect_by_any_loopback_name(relay: EmbeddedRelay) -> None:
    """The page's own origin joins, whether the browser calls this machine 127.0.0.1 or localhost."""
    port = int(relay.url.rsplit(":", 1)[1])
    assert "joined" == await viewer_with_origin(relay, relay.url)
    assert "joined" == await viewer_with_origin(relay, f"http://localhost:{port}")
    assert "accepted" == await viewer_with_origin(relay, f"http://localhost:{port}", base=f"http://localhost:{port}")
    assert 0 == (await drops(relay))["bad_origin"]


async def test_the_public_url_is_an_origin_of_the_relay() -> None:
    """Behind a tunnel or proxy the page's origin is the public URL's, whatever Host reaches the relay."""
    config = RelayConfig(port=0, public_url="https://relay.example.org/")
    async with EmbeddedRelay(config) as relay:
        assert "joined" == await viewer_with_origin(relay, "https://relay.example.org")
        assert "refused 403" == await viewer_with_origin(relay, "https://relay.example.org.evil.example")
        assert "refused 403" == await viewer_with_origin(relay, "http://relay.example.org:8080")


async def test_a_host_sends_no_origin_and_is_not_refused(relay: EmbeddedRelay) -> None:
    """A host (a program, not a browser) presents its bearer token and no Origin: it attaches as before."""
    session_id = new_id()
    host = await connect(relay, "host", session_id)
    viewer = await connect(relay, "viewer", session_id)
    assert {"type": "peer", "role": "viewer", "state": "joined"} == await control(host)
    await viewer.close()
    await host.close()


async def test_the_page_may_connect_only_to_its_own_origin(relay: EmbeddedRelay) -> None:
    """The viewer page's CSP has connect-src 'self' and no ws:/wss: wildcard that lets a script reach any host."""
    async with httpx.AsyncClient(timeout=5 * UNIT) as client:
        page = await client.get(f"{relay.url}/s/{new_id()}")
    policy = {
        part.split()[0]: part.split()[1:] for part in page.headers["content-security-policy"].split(";") if part.strip()
    }
    assert ["'self'"] == policy["connect-src"]

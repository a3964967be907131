"""/metrics in Prometheus's format behind the operator token, and /readyz (broker and store reachable)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import UNIT
from tests.integration.test_relay import closed, connect, new_id, pair
from tests.support.redis_server import redis_server
from tether.relay.accounts import AccountStore
from tether.relay.redis_broker import RedisBroker
from tether.relay.server import EmbeddedRelay, RelayConfig

TOKEN = "operator-secret-for-metrics-tests"
SCRAPER_ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"


@pytest.fixture
async def relay() -> AsyncIterator[EmbeddedRelay]:
    """An embedded relay with an operator token."""
    async with EmbeddedRelay(RelayConfig(port=0, operator_token=TOKEN)) as embedded:
        yield embedded


async def scrape(relay: EmbeddedRelay, accept: str = "text/plain", token: str = TOKEN) -> httpx.Response:
    """GET /metrics as a Prometheus scraper would."""
    async with httpx.AsyncClient(timeout=5 * UNIT) as client:
        return await client.get(f"{relay.url}/metrics", headers={"Accept": accept, "Authorization": f"Bearer {token}"})


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_prometheus_format_counts_frames_bytes_latency_and_refusals(relay: EmbeddedRelay) -> None:
    """After 5 frames of 100 bytes and two refusals, the exposition says so, with the forwarding histogram."""
    _, host, viewer = await pair(relay)
    for _ in range(5):
        await host.send(b"x" * 100)
    for _ in range(5):
        await viewer.recv()
    assert 4401 == (await closed(await connect(relay, "viewer", new_id())))[0]
    port = int(relay.url.rsplit(":", 1)[1])
    async with httpx.AsyncClient(timeout=5 * UNIT) as client:
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                   "Origin": f"http://127.0.0.1:{port + 1}"}  # fmt: skip
        assert 403 == (await client.get(f"{relay.url}/v1/viewer/{new_id()}", headers=upgrade)).status_code
    response = await scrape(relay)
    assert (200, "text/plain") == (response.status_code, response.headers["content-type"].split(";")[0])
    figures = samples(response.text)
    assert 5 == figures["tether_relay_frames_forwarded_total", ()]
    assert 500 == figures["tether_relay_bytes_forwarded_total", ()]
    assert 5 == figures["tether_relay_forward_seconds_count", ()]
    assert 1 == figures["tether_relay_sessions", ()]
    assert 2 == figures["tether_relay_connections", ()]
    assert 1 == figures["tether_relay_drops_total", (("reason", "unauthorized"),)]
    assert 1 == figures["tether_relay_drops_total", (("reason", "bad_origin"),)]
    assert 0 == figures["tether_relay_drops_total", (("reason", "too_slow"),)]
    assert 1 == sum(value for (name, _), value in figures.items() if name == "tether_relay_credential_refusals_total")
    await host.close()


async def test_a_scraper_gets_openmetrics_and_needs_the_token(relay: EmbeddedRelay) -> None:
    """Prometheus's own Accept header gets OpenMetrics; without the operator token, 401 as for JSON."""
    response = await scrape(relay, SCRAPER_ACCEPT)
    assert "application/openmetrics-text" == response.headers["content-type"].split(";")[0]
    assert response.text.rstrip().endswith("# EOF")
    assert 401 == (await scrape(relay, SCRAPER_ACCEPT, token="wrong")).status_code


async def test_readyz_is_ready_with_the_memory_broker_and_no_store(relay: EmbeddedRelay) -> None:
    """An embedded relay with the memory broker is ready; /readyz says nothing but the booleans."""
    async with httpx.AsyncClient(timeout=5 * UNIT) as client:
        response = await client.get(f"{relay.url}/readyz")
    assert (200, {"ok": True, "broker": True, "store": True}) == (response.status_code, response.json())


async def test_readyz_says_503_when_redis_or_the_store_is_gone() -> None:
    """A database nobody answers at, then Redis stopped under the running relay: 503 naming which."""
    with socket.socket() as listener:  # a port nothing listens on once closed
        listener.bind(("127.0.0.1", 0))
        dead_db = f"postgresql://tether@127.0.0.1:{listener.getsockname()[1]}/postgres?connect_timeout=2"
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(redis_server())
        relay = EmbeddedRelay(RelayConfig(port=0), broker=RedisBroker(url), store=AccountStore(dead_db))
        async with relay, httpx.AsyncClient(timeout=10 * UNIT) as client:
            first = await client.get(f"{relay.url}/readyz")
            stack.close()  # redis-server stops
            second = await client.get(f"{relay.url}/readyz")
    assert (503, {"ok": False, "broker": True, "store": False}) == (first.status_code, first.json())
    assert (503, {"ok": False, "broker": False, "store": False}) == (second.status_code, second.json())


async def test_json_figures_stay_for_other_clients(relay: EmbeddedRelay) -> None:
    """A client that does not ask for Prometheus's format gets the JSON figures, frames forwarded included."""
    _, host, viewer = await pair(relay)
    await host.send(b"abc")
    await viewer.recv()
    async with httpx.AsyncClient(timeout=5 * UNIT) as client:
        response = await client.get(f"{relay.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    figures = response.json()
    assert (1, 3) == (figures["frames_forwarded"], figures["bytes_forwarded"])
    await host.close()


async def test_the_grafana_dashboard_charts_metrics_the_relay_has(relay: EmbeddedRelay) -> None:
    """Every metric deploy/scale/grafana-dashboard.json queries is in the relay's exposition."""
    board = json.loads((Path(__file__).parents[2] / "deploy" / "scale" / "grafana-dashboard.json").read_text())
    queried = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for panel in board["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:tether_relay|process)_[a-z_]+", target["expr"])
    }
    exposed = {
        re.sub(r"_(bucket|count|sum|created|total)$", "", name) for name, _ in samples((await scrape(relay)).text)
    }
    assert len(queried) >= 10
    assert set() == {re.sub(r"_total$", "", name) for name in queried} - exposed

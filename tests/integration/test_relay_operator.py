"""What the relay shows over plain HTTP: a bare health check, the operator's figures behind a token, page headers.

Issue 8: /healthz showed session counts and drop counters to anyone, and
/assets/index.html was served without the page's security headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import UNIT
from tether.relay.app import ASSET_HEADERS, PAGE_HEADERS
from tether.relay.server import EmbeddedRelay, RelayConfig

TOKEN = "operator-secret-for-tests"


@pytest.fixture
async def relay() -> AsyncIterator[EmbeddedRelay]:
    """An embedded relay with an operator token."""
    async with EmbeddedRelay(RelayConfig(port=0, operator_token=TOKEN)) as embedded:
        yield embedded


async def get(url: str, **headers: str) -> httpx.Response:
    """GET ``url`` with ``headers``."""
    async with httpx.AsyncClient(timeout=5 * UNIT) as client:
        return await client.get(url, headers=headers)


async def test_healthz_says_only_ok(relay: EmbeddedRelay) -> None:
    """/healthz is `{"ok": true}` and nothing else: no session counts, no drop counters."""
    response = await get(f"{relay.url}/healthz")
    assert (200, {"ok": True}) == (response.status_code, response.json())


async def test_metrics_need_the_operator_token(relay: EmbeddedRelay) -> None:
    """/metrics answers 401 without the operator's bearer token, and the figures with it."""
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        assert 401 == (await get(f"{relay.url}/metrics", **headers)).status_code
    response = await get(f"{relay.url}/metrics", Authorization=f"Bearer {TOKEN}")
    figures = response.json()
    assert (200, "no-store") == (response.status_code, response.headers["cache-control"])
    assert {"sessions", "connections", "queued_bytes", "queued_bytes_limit", "drops"} <= set(figures)
    assert 0 == figures["drops"]["too_many_sessions"]


async def test_metrics_are_off_without_an_operator_token() -> None:
    """A relay given no operator token has no /metrics at all."""
    async with EmbeddedRelay(RelayConfig(port=0)) as relay:
        assert 404 == (await get(f"{relay.url}/metrics", Authorization="Bearer anything")).status_code


async def test_html_assets_carry_the_page_headers(relay: EmbeddedRelay) -> None:
    """/assets/index.html gets the page's security headers, like /s/ID; scripts get the asset headers."""
    page = await get(f"{relay.url}/assets/index.html")
    script = await get(f"{relay.url}/assets/app.js")
    assert (200, 200) == (page.status_code, script.status_code)
    assert PAGE_HEADERS == {name: page.headers[name] for name in PAGE_HEADERS}
    assert ASSET_HEADERS == {name: script.headers[name] for name in ASSET_HEADERS}
    assert "content-security-policy" not in script.headers

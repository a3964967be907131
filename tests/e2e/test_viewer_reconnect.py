"""The page comes back by itself after a dropped connection, as the same device, nothing lost (issue 10, viewer side).

The browser reaches the relay through a FaultProxy the test controls; the host stays
connected to the relay directly. A cut connection shows "reconnecting", comes back
without a new pairing question, and the transcript is the host's, once; a prompt typed
while the network is away is sent once when it is back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import UNIT, RcRun, chromium
from tests.support.fault_proxy import FaultProxy
from tether.testing import ViewerClient

pytestmark = pytest.mark.browser
WAIT_MS = 15_000 * UNIT


async def test_the_page_reconnects_as_the_same_device_and_sends_a_queued_prompt_once(rc: RcRun, project: Path) -> None:
    from playwright.async_api import expect

    parts = urlsplit(rc.url)
    assert parts.hostname is not None and parts.port is not None
    async with FaultProxy(parts.hostname, parts.port) as proxy, chromium() as browser:
        page = await (await browser.new_context(viewport={"width": 390, "height": 844})).new_page()
        await page.goto(rc.url.replace(f":{parts.port}/", f":{proxy.port}/"))
        status = page.get_by_test_id("connection-status")
        await expect(status).to_have_text("connected", timeout=WAIT_MS)
        await page.get_by_test_id("prompt-input").fill("say before the drop")
        await page.get_by_test_id("prompt-input").press("Enter")
        agent = page.locator('[data-testid="message"][data-role="agent"]')
        await expect(agent).to_have_count(1, timeout=WAIT_MS)

        proxy.hold()  # the network goes away: every connection cut, new ones fail
        await expect(status).to_have_text("reconnecting", timeout=WAIT_MS)
        await page.get_by_test_id("prompt-input").fill("say while away")
        await page.get_by_test_id("prompt-input").press("Enter")
        await expect(page.locator("#notice")).to_contain_text("will be sent once connected")
        proxy.release()

        await expect(status).to_have_text("connected", timeout=WAIT_MS)
        await expect(agent).to_have_count(2, timeout=WAIT_MS)
        users = page.locator('[data-testid="message"][data-role="user"]')
        shown = await users.all_text_contents()  # each prompt once, in order (a label may precede the text)
        assert 2 == len(shown) and shown[0].endswith("say before the drop") and shown[1].endswith("say while away")
        assert proxy.accepted >= 2

        # An approval tapped while away is sent once when back, if it still waits.
        await page.get_by_test_id("prompt-input").fill("write notes.txt approved offline")
        await page.get_by_test_id("prompt-input").press("Enter")
        approve = page.get_by_test_id("approve-once")
        await expect(approve).to_have_count(1, timeout=WAIT_MS)
        proxy.hold()
        await expect(status).to_have_text("reconnecting", timeout=WAIT_MS)
        await approve.click()
        proxy.release()
        await expect(status).to_have_text("connected", timeout=WAIT_MS)
        await expect(agent.filter(has_text="wrote notes.txt")).to_have_count(1, timeout=WAIT_MS)
        assert "approved offline" == (project / "notes.txt").read_text()


async def test_a_viewer_gone_silent_does_not_hold_the_slot(rc: RcRun) -> None:
    """A viewer whose connection went dead without a close (blackholed) is dropped by the relay's heartbeat;
    the same device comes back on a new connection within seconds, without a new question."""
    parts = urlsplit(rc.url)
    assert parts.hostname is not None and parts.port is not None
    async with (
        FaultProxy(parts.hostname, parts.port) as proxy,
        ViewerClient(rc.url.replace(f":{parts.port}/", f":{proxy.port}/")) as first,
    ):
        await first.prompt("say before sleeping")
        await first.wait_for(lambda v: v.texts("agent"), 10 * UNIT)
        proxy.blackhole()
        again = first.rejoin()
        deadline = asyncio.get_running_loop().time() + 30 * UNIT
        while True:  # the page retries like this on 4409 (app.js onClose), with backoff
            async with ViewerClient(rc.url, **again, wait_admitted=False) as second:
                await second.wait_for(lambda v: v.admitted or v.closed, 10 * UNIT)
                if second.admitted:
                    assert ["say before sleeping"] == second.texts("user")
                    break
                assert 4409 == second.close_code
            assert asyncio.get_running_loop().time() < deadline, "the dead viewer kept the slot"
            await asyncio.sleep(0.5)

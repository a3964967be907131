"""The page comes back by itself after a dropped connection, as the same device, nothing lost (issue 10, viewer side).

The browser reaches the relay through a FaultProxy the test controls; the host stays
connected to the relay directly. A cut connection shows "reconnecting" with the time left
in the host's outage window, the buttons that need the host disabled, comes back without a
new pairing question, and the transcript is the host's, once; a prompt typed while the
network is away is sent once when it is back.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import UNIT, RcRun, chromium
from tests.support.fault_proxy import FaultProxy
from tether.testing import ViewerClient

pytestmark = pytest.mark.browser
WAIT_MS = 15_000 * UNIT
COUNTDOWN = re.compile(r"^reconnecting · (10:00|9:[0-5]\d) left$")


async def test_the_page_reconnects_as_the_same_device_and_sends_a_queued_prompt_once(rc: RcRun, project: Path) -> None:
    """Cut, the page counts the outage window down with the host's buttons disabled and a prompt box that
    queues; back, the prompt runs once and the approval goes through. The host gone for good: the window runs
    out (time jumped ahead), the page says so, refuses the queued prompt and stops retrying."""
    from playwright.async_api import expect

    parts = urlsplit(rc.url)
    assert parts.hostname is not None and parts.port is not None
    async with FaultProxy(parts.hostname, parts.port) as proxy, chromium() as browser:
        page = await (await browser.new_context(viewport={"width": 390, "height": 844})).new_page()
        await page.clock.install()  # time flows as usual until the test jumps it ahead
        await page.goto(rc.url.replace(f":{parts.port}/", f":{proxy.port}/"))
        status = page.get_by_test_id("connection-status")
        box = page.get_by_test_id("prompt-input")
        await expect(status).to_have_text("connected", timeout=WAIT_MS)
        await box.fill("say before the drop")
        await box.press("Enter")
        agent = page.locator('[data-testid="message"][data-role="agent"]')
        await expect(agent).to_have_count(1, timeout=WAIT_MS)
        await box.fill("write notes.txt approved after the drop")
        await box.press("Enter")
        approve = page.get_by_test_id("approve-once")
        await expect(approve).to_be_enabled(timeout=WAIT_MS)

        proxy.hold()  # the network goes away: every connection cut, new ones fail
        await expect(status).to_have_text(COUNTDOWN, timeout=WAIT_MS)  # the host's window: 10 minutes
        await expect(status).to_have_attribute("data-state", "reconnecting")
        await expect(approve).to_be_disabled()  # nothing the host must do is offered while it cannot hear
        await expect(page.get_by_test_id("deny")).to_be_disabled()
        await expect(page.get_by_test_id("stop")).to_be_disabled()
        await expect(page.get_by_test_id("mode-select")).to_be_disabled()
        await box.fill("say while away")
        await box.press("Enter")
        await expect(page.locator("#notice")).to_contain_text("will be sent once connected")
        proxy.release()
        await page.evaluate("dispatchEvent(new Event('online'))")  # the network is back: at once

        await expect(status).to_have_text("connected", timeout=WAIT_MS)
        await expect(approve).to_be_enabled()
        await approve.click()
        await expect(agent.filter(has_text="wrote notes.txt")).to_have_count(1, timeout=WAIT_MS)
        await expect(agent.filter(has_text="while away")).to_have_count(1, timeout=WAIT_MS)
        users = page.locator('[data-testid="message"][data-role="user"]')
        shown = await users.all_text_contents()  # each prompt once, in order (a label may precede the text)
        assert 3 == len(shown) and shown[2].endswith("say while away"), shown
        assert "approved after the drop" == (project / "notes.txt").read_text()
        assert proxy.accepted >= 2

        proxy.blackhole()  # the network goes silent: no reset, nothing arrives (a phone's dead Wi-Fi)
        await page.clock.fast_forward("00:20")  # the page's pings to the relay go unanswered
        await expect(status).to_have_text(COUNTDOWN, timeout=WAIT_MS)  # it noticed by itself, no close came
        proxy.blackholed = False
        await page.evaluate("dispatchEvent(new Event('online'))")  # back: at once, not after the next backoff
        # Admitted again once the relay let the silent connection go (its own heartbeat: within 10 s).
        await expect(status).to_have_text("connected", timeout=2 * WAIT_MS)

        rc.process.kill()  # the host is gone without a word: the relay says "host away" (4503), not "ended"
        await expect(status).to_have_text(COUNTDOWN, timeout=WAIT_MS)
        await box.fill("say to nobody")
        await box.press("Enter")
        await page.clock.fast_forward("10:01")
        await expect(status).to_have_text("ended", timeout=WAIT_MS)
        notice = page.locator("#notice")
        await expect(notice).to_contain_text("the host did not come back within 10 minutes")
        await expect(notice).to_contain_text("Your prompt was not sent")
        await expect(box).to_have_value("say to nobody")
        tried = proxy.accepted
        await page.clock.fast_forward("05:00")
        await page.evaluate("dispatchEvent(new Event('online'))")
        await expect(status).to_have_text("ended")
        assert tried == proxy.accepted  # it stopped retrying


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

"""Files and images from the phone reach the agent whole (issue 12: attach where the agent accepts it).

Real `tether rc` with the scripted agent (it takes images and embedded files, and says back
what it received: kind, name, type, size and a digest of the bytes), a real relay, Chromium.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import UNIT, RcRun, chromium

pytestmark = pytest.mark.browser
WAIT_MS = 15_000 * UNIT
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


async def test_an_image_and_a_file_reach_the_agent_whole(rc: RcRun, tmp_path: Path) -> None:
    from playwright.async_api import expect

    image, notes = tmp_path / "shot.png", tmp_path / "notes.txt"
    image.write_bytes(PNG)
    notes.write_text("héllo from the phone\n", encoding="utf-8")
    async with chromium() as browser:
        page = await (await browser.new_context(viewport={"width": 390, "height": 844})).new_page()
        await page.goto(rc.url)
        await expect(page.get_by_test_id("connection-status")).to_have_text("connected", timeout=WAIT_MS)
        await expect(page.get_by_test_id("attach")).to_be_visible()  # the agent said it takes files
        await page.get_by_test_id("attach-input").set_input_files([str(image), str(notes)])
        await expect(page.get_by_test_id("attachment")).to_have_count(2)
        await page.get_by_test_id("prompt-input").fill("say look at these")
        await page.get_by_test_id("prompt-send").click()
        agent = page.locator('[data-testid="message"][data-role="agent"]')
        await expect(agent).to_contain_text("received image", timeout=WAIT_MS)
        said = await agent.first.text_content() or ""
        png_digest = hashlib.sha256(PNG).hexdigest()[:12]
        notes_digest = hashlib.sha256(notes.read_bytes()).hexdigest()[:12]
        assert f"image attachment:///shot.png image/png {len(PNG)} bytes sha256:{png_digest}" in said
        assert f"notes.txt text/plain {len(notes.read_bytes())} bytes sha256:{notes_digest}" in said
        await expect(page.get_by_test_id("attachment")).to_have_count(0)  # sent once, then cleared
        await expect(page.get_by_test_id("prompt-attachment")).to_have_count(2)  # the prompt shows what went

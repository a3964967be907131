"""All of the user's live sessions in one list, with switching, in the real page (issue 12).

Two `tether rc` on one machine: the browser pairs with the first (y at its terminal), lists
the second, and opens it without a second question (it is a paired device).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import UNIT, Lines, chromium, start_rc, stop
from tests.e2e.test_pairing import pair_phone


async def test_the_page_lists_the_other_live_session_and_switches_to_it_without_pairing_again(
    project: Path, tether_env: dict[str, str], relay: str
) -> None:
    from playwright.async_api import expect

    first = start_rc(project, tether_env, relay, accept_device=False)
    second = start_rc(project, tether_env, relay, accept_device=False)
    assert first.process.stderr is not None
    try:
        async with chromium() as browser:
            page = await pair_phone(browser, first, Lines(first.process.stderr))
            await page.get_by_role("button", name=re.compile("^Sessions")).click(timeout=10_000 * UNIT)
            other = page.locator(f'[data-testid="session-link"][href*="/s/{second.session_id}"]')
            await expect(other).to_contain_text("live")
            await other.click()
            await expect(page.get_by_test_id("connection-status")).to_have_text("connected", timeout=10_000 * UNIT)
            assert f"/s/{second.session_id}" in page.url and "#" not in page.url
            # Back in the list: the first session, live too, and this one marked as the current page.
            await page.get_by_role("button", name=re.compile("^Sessions")).click()
            back = page.locator(f'[data-testid="session-link"][href*="/s/{first.session_id}"]')
            await expect(back).to_contain_text("live")
            stop(first.process)
            # Ended: still listed as a session this tab opened, no longer live.
            await expect(back).not_to_contain_text("live", timeout=10_000 * UNIT)
    finally:
        stop(first.process)
        assert "[y/N]" not in second.stderr()  # the paired device was admitted without a question

"""Against approval fatigue, in real Chromium (issue 11): scoped "always allow", revocation, bulk answers.

The first test drives a real `tether rc` (scripted agent, embedded relay): "always allow" shows
its exact scope, a second command of that prefix runs unasked, the grant is revoked from the
page's panel and the same command asks again. The second plays the host (FakeHost of
test_viewer_page.py) to hold three requests at once: two are approved together, each signed
on its own, and the risky one is left out of the bulk approval and waits for its cooldown.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import UNIT, chromium, start_rc, stop
from tests.e2e.test_viewer_mobile import approval, phone, relay_url  # noqa: F401 (fixtures)
from tests.e2e.test_viewer_page import FakeHost, message, open_session
from tether.protocol import signing
from tether.protocol.messages import Decide, Refused
from tether.testing import ViewerClient, option_id

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
WAIT_MS = 15_000 * UNIT


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    """One Debian Chromium for the module."""
    async with chromium() as launched:
        yield launched


async def test_always_allow_scoped_then_revoked(browser: Any, project: Path, tether_env: dict[str, str]) -> None:
    """The scope is shown before it is chosen; a matching command then runs unasked; revoked, it asks again."""
    from playwright.async_api import expect

    run = start_rc(project, tether_env, "")
    try:
        async with phone(browser) as page:
            await page.goto(run.url)
            await expect(page.get_by_test_id("connection-status")).to_have_text("connected", timeout=WAIT_MS)
            agent = page.locator('[data-testid="message"][data-role="agent"]')

            async def prompt(text: str) -> None:
                await page.get_by_test_id("prompt-input").fill(text)
                await page.get_by_test_id("prompt-send").click()

            await prompt("sneakrun ls -a")  # tether asks itself, showing the exact command
            card = page.get_by_test_id("approval")
            always = card.get_by_test_id("approve-always")
            await expect(always).to_have_text(
                "Always allow commands starting with `ls` (this session)", timeout=WAIT_MS
            )
            await expect(card.locator(".always-note")).to_contain_text("exactly commands starting with `ls`")
            await always.click()
            await expect(agent.filter(has_text="exit 0")).to_have_count(1, timeout=WAIT_MS)
            grant = page.get_by_test_id("allowed-grant")
            await expect(grant).to_have_count(1)
            await expect(grant).to_contain_text("#1 commands starting with `ls`")

            await prompt("sneakrun ls -1")  # covered: no card, the transcript says by what
            await expect(agent.filter(has_text="exit 0")).to_have_count(2, timeout=WAIT_MS)
            await expect(page.get_by_test_id("approval-outcome").last).to_contain_text("always allow #1")
            await expect(card).to_have_count(0)

            await page.get_by_test_id("allowed").locator("summary").click()
            await grant.get_by_test_id("revoke-grant").click()
            await expect(grant).to_have_count(0, timeout=WAIT_MS)
            await expect(page.get_by_test_id("allowed")).to_be_hidden()
            await prompt("sneakrun ls -1")
            await expect(card).to_have_count(1, timeout=WAIT_MS)  # asked again
            await card.get_by_test_id("deny").click()
            await expect(agent.filter(has_text="failed:")).to_have_count(1, timeout=WAIT_MS)
    finally:
        stop(run.process)


async def test_a_device_is_told_why_its_answer_was_refused_and_the_time_left(
    project: Path, tether_env: dict[str, str]
) -> None:
    """Through a real host (issue 12): a risky approval sent within its cooldown is answered to that device with a
    refusal naming the approval, why and when; a device that comes back is told the seconds each pending approval
    has left, fewer than its whole timeout (the core's unit tests: the same answer later counts)."""
    run = start_rc(project, tether_env, "")
    try:
        async with ViewerClient(run.url) as viewer:
            await viewer.prompt("sneakrun rm -rf build")
            asked = await viewer.wait_for(lambda v: v.pending_approval(), WAIT_MS / 1000)
            assert "risky" == asked["tier"]
            allow = option_id(asked, "allow_once")
            expires = int(time.time() * 1000) + 60_000  # signed as the page signs, sent at once: too soon
            signature = viewer.device.sign(viewer.session_id, asked, None, allow, expires)
            await viewer.send(Decide(approval_id=asked["id"], option_id=allow, signature=signature, expires=expires))
            (refused,) = await viewer.wait_for(lambda v: v.refusals, WAIT_MS / 1000)
            assert asked["id"] == refused.approval_id and "shown 3 s" in refused.reason
            assert refused.retry is not None and 0 < refused.retry <= 3
            await viewer.wait_for(lambda v: v.mirror.at is not None and v.mirror.at > 0)
            comeback = viewer.rejoin()
        async with ViewerClient(run.url, **comeback) as back:  # the same device, coming back (hello.since: a replay)
            assert back.mirror.replays and asked["id"] in back.mirror.remaining
            assert 0 < back.mirror.remaining[asked["id"]] < asked["timeout"]
            assert "pending" == back.entries[asked["id"]]["state"]
    finally:
        stop(run.process)


async def test_bulk_approve_signs_each_and_leaves_the_risky_one(browser: Any, relay_url: str) -> None:  # noqa: F811
    """Two requests approved together, each with its own valid signature; a risky one stays, slowed and confirmed."""
    from playwright.async_api import expect

    asks = [
        approval("approval-1", None, "Edit notes.txt", "edit", tier="normal"),
        approval("approval-2", None, "Run make test", "execute", tier="normal"),
        approval("approval-3", None, "Run rm -rf build — RISKY: a delete (rm)", "execute", tier="risky", cooldown=1),
    ]
    async with phone(browser) as page, FakeHost(relay_url) as host:
        await open_session(page, host, [message("m1", "user", "three things"), *asks], running=True)
        cards = page.get_by_test_id("approval")
        await expect(cards).to_have_count(3, timeout=WAIT_MS)
        risky = cards.nth(2)
        await expect(risky.get_by_test_id("approve-once")).to_be_disabled()  # its cooldown runs
        for index in range(3):
            await cards.nth(index).get_by_test_id("approval-select").check()
        bulk = page.get_by_test_id("bulk-approve")
        await expect(bulk).to_have_text("Approve 2 selected")
        await expect(page.locator(".bulk-note")).to_contain_text("1 risky request is left out")
        await bulk.click()
        decided = [await host.wait_for_kind(Decide, n) for n in (1, 2)]
        assert {"approval-1", "approval-2"} == {d.approval_id for d in decided if isinstance(d, Decide)}
        assert host.device is not None
        for decide in decided:
            assert isinstance(decide, Decide)
            shown = next(a for a in asks if a["id"] == decide.approval_id)
            assert signing.check_approval(public_key=host.device.public_key, session_id=host.session_id,
                                          approval=shown, tool_call=None, option_id=decide.option_id,
                                          signature=decide.signature, expires_ms=decide.expires,
                                          now=(decide.expires or 0) / 1000 - 60) is None  # fmt: skip

        # The risky one: enabled after its cooldown, and the first tap only says what is risky.
        approve = risky.get_by_test_id("approve-once")
        await expect(approve).to_be_enabled(timeout=WAIT_MS)
        await approve.click()
        await expect(approve).to_contain_text("Tap again to approve: risky: a delete (rm)")
        await approve.click()
        last = await host.wait_for_kind(Decide, 3)
        assert isinstance(last, Decide) and "approval-3" == last.approval_id

        # The host refuses it (here: too soon after the last risky approval): the card says why and when, and
        # takes a tap again once that time has passed (issue 12; before, it stayed disabled until it expired).
        await host.send(Refused(approval_id="approval-3", reason="risky requests are approved one at a time", retry=1))
        await expect(risky.get_by_test_id("approval-refused")).to_have_text(
            "Not accepted: risky requests are approved one at a time. Tap again in 1 s."
        )
        await expect(approve).to_be_enabled(timeout=WAIT_MS)
        await expect(risky.get_by_test_id("approval-refused")).to_have_text(
            "Not accepted: risky requests are approved one at a time. Tap again."
        )
        await approve.click()
        await approve.click()
        await expect(risky.get_by_test_id("approval-refused")).to_have_count(0)  # answered again: the note goes
        again = await host.wait_for_kind(Decide, 4)
        assert isinstance(again, Decide) and "approval-3" == again.approval_id

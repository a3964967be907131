"""One controlling device, done right (issue 9), through a real `tether rc`, relay, and two devices
in headless Chromium (two browser contexts) beside tether.testing.ViewerClient, the page's twin.

One session tells the whole story (a `tether rc` costs seconds to start): the second browser is
told another device controls the session and asks to take over; the terminal asks; the first is
told it was replaced and takes control back without a question; a take-over refused at the
terminal gets nothing and is dropped; a viewer whose network went dead frees the seat within
the relay's heartbeat (5 s pings, 5 s to answer), and a new device joins; when its network comes
back, the first page, refused busy for 15 s, concludes it was taken over while away and takes
control back, asked at the terminal.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from tests.conftest import UNIT, Lines, RcRun, chromium, start_rc, stop
from tests.support.fault_proxy import FaultProxy
from tether.protocol.signing import DeviceKey
from tether.testing import ViewerClient

WAIT = 10 * UNIT
WAIT_MS = 10_000 * UNIT


def answer(run: RcRun, line: str) -> None:
    """Type a line at the terminal of `tether rc`."""
    assert run.process.stdin is not None
    run.process.stdin.write(line.encode() + b"\n")
    run.process.stdin.flush()


def question(terminal: Lines, code: str) -> str:
    """Wait for the terminal's question showing ``code``; its text."""
    terminal.until(f"code {code}? [y/N]", WAIT)
    return terminal.seen[-1]


async def test_one_controlling_device(project: Path, tether_env: dict[str, str], relay: str) -> None:
    from playwright.async_api import expect

    run = start_rc(project, dict(tether_env, COLUMNS="400"), relay, accept_device=False)  # one line per question
    assert run.process.stderr is not None and run.process.stdout is not None
    terminal = Lines(run.process.stderr)
    port = urlsplit(run.url).port
    try:
        async with FaultProxy("127.0.0.1", port or 0) as proxy, chromium() as browser:
            # The first device reaches the relay through a proxy that can go silent (a phone asleep).
            first = await (await browser.new_context()).new_page()
            await first.goto(run.url.replace(f":{port}/", f":{proxy.port}/"))
            code = first.get_by_test_id("pairing-code")
            await expect(code).to_have_text(re.compile(r"^\d{6}$"), timeout=WAIT_MS)
            first_id = re.findall(r"\(([\w-]+)\), code", question(terminal, str(await code.text_content())))[0]
            answer(run, "y")
            status = first.get_by_test_id("connection-status")
            await expect(status).to_have_text("connected", timeout=WAIT_MS)

            # A second browser with the same link: told in words, and offered to take over.
            second = await (await browser.new_context()).new_page()  # another profile: another device key
            await second.goto(run.url)
            second_status = second.get_by_test_id("connection-status")
            await expect(second_status).to_have_text("ended: busy", timeout=WAIT_MS)
            await expect(second.locator("#notice")).to_contain_text("Another device controls this session")
            await second.get_by_test_id("take-over").click()
            code = second.get_by_test_id("pairing-code")
            await expect(code).to_have_text(re.compile(r"^\d{6}$"), timeout=WAIT_MS)
            asked = question(terminal, str(await code.text_content()))
            assert f"take over from Chrome on Linux ({first_id}) for Chrome on Linux (" in asked, asked
            await expect(status).to_have_text("ended: replaced", timeout=WAIT_MS)  # at once, before the answer
            await expect(first.locator("#notice")).to_contain_text("Another device took over this session")
            answer(run, "y")
            await expect(second_status).to_have_text("connected", timeout=WAIT_MS)
            terminal.until(f"({first_id}) was replaced by Chrome on Linux (", WAIT)

            # The first takes control back: its own device, just displaced, so no question.
            await first.get_by_test_id("take-over").click()
            await expect(status).to_have_text("connected", timeout=WAIT_MS)
            await expect(second_status).to_have_text("ended: replaced", timeout=WAIT_MS)
            terminal.until(f"was replaced by Chrome on Linux ({first_id})", WAIT)

            # A take-over refused at the terminal: the newcomer gets nothing and is dropped; the owner comes back.
            async with ViewerClient(run.url, wait_admitted=False, takeover=True) as intruder:
                await expect(status).to_have_text("ended: replaced", timeout=WAIT_MS)
                assert intruder.device.id in question(terminal, await intruder.wait_for(lambda v: v.pairing_code))
                answer(run, "n")
                await intruder.wait_for(lambda v: v.closed, WAIT)
                assert (4403, False, {}) == (intruder.close_code, intruder.admitted, intruder.entries)
                assert intruder.ended is not None and "taking over was refused" in intruder.ended
            printed = json.loads(Lines(run.process.stdout).next(WAIT, "the new URL") or "{}")
            assert "a take-over was refused" == printed["new_url"]  # the link was used to ask: a new one
            await first.get_by_test_id("take-over").click()
            await expect(status).to_have_text("connected", timeout=WAIT_MS)
            assert 3 == "".join(terminal.seen).count("[y/N]")  # pair, take over, the refused one: never to take back

            # The first device's network goes silent: the relay lets it go, and a new device joins.
            proxy.blackhole()
            terminal.until(f"({first_id}) disconnected.", 15 * UNIT)
            laptop = DeviceKey("laptop")
            async with ViewerClient(printed["url"], device=laptop, wait_admitted=False) as joined:
                question(terminal, await joined.wait_for(lambda v: v.pairing_code))
                answer(run, "y")
                await joined.wait_for(lambda v: v.admitted, WAIT)

                # Its network comes back while the laptop holds the seat. Refused busy for longer than a dead
                # connection of its own could hold it (15 s), the page concludes another device took over
                # while it was away, and offers to take back control: asked at the terminal like any take-over.
                proxy.blackholed = False
                away = first.locator("#notice")
                await expect(away).to_contain_text("took over while this browser was away", timeout=4 * WAIT_MS)
                await expect(status).to_have_text("ended: replaced")
                await first.get_by_test_id("take-over").click()
                code = first.get_by_test_id("pairing-code")
                await expect(code).to_be_visible(timeout=WAIT_MS)
                await expect(code).to_have_text(re.compile(r"^\d{6}$"), timeout=WAIT_MS)
                # Waited for in a thread: this page's traffic goes through the proxy, which runs on this loop.
                asked = await asyncio.to_thread(question, terminal, str(await code.text_content()))
                assert f"take over from {laptop.name} " in asked and f"for Chrome on Linux ({first_id})" in asked, asked
                answer(run, "y")
                await expect(status).to_have_text("connected", timeout=WAIT_MS)
                await joined.wait_for(lambda v: v.closed, WAIT)
                assert 4410 == joined.close_code
    finally:
        stop(run.process)

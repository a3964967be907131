"""Scale-out end to end: `tether rc` on one relay process, the phone's browser on another.

Two `tether relay serve --broker redis://... --db postgresql://...` processes share a real
redis-server (routing, credentials) and a real PostgreSQL (accounts, device keys), as
several relays behind a load balancer do. The machine logs in through the first relay;
the session URL is opened in real Chromium at the second; the edit is approved there and
lands on disk.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import TETHER, UNIT, chromium, start_rc, stop
from tests.integration.relay_process import RelayProcess, relay_process
from tests.support.postgres import postgres_server
from tests.support.redis_server import redis_server
from tether.auth.keys import KeySet

pytestmark = pytest.mark.browser


@pytest.fixture
def two_relays(tmp_path: Path, tether_env: dict[str, str]) -> Iterator[tuple[RelayProcess, RelayProcess]]:
    """Two relay processes on one Redis and one PostgreSQL, signing with one key set; logged in at the first."""
    keys = KeySet.generate(time.time())
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(postgres_server())
        broker = stack.enter_context(redis_server())
        args = ("--broker", broker, "--db", database)
        first = stack.enter_context(relay_process(tmp_path, tether_env, *args, keys=keys))
        second = stack.enter_context(relay_process(tmp_path, tether_env, *args, keys=keys))
        invite = subprocess.run(
            [*TETHER, "relay", "invite", "tester", "--db", database, "--public-url", first.url],
            env=tether_env, check=True, capture_output=True, timeout=60 * UNIT,
        ).stdout.decode().strip()  # fmt: skip
        subprocess.run([*TETHER, "login", invite], env=tether_env, check=True, capture_output=True, timeout=60 * UNIT)
        yield first, second


async def test_host_on_one_relay_approved_from_a_browser_on_another(
    project: Path, tether_env: dict[str, str], two_relays: tuple[RelayProcess, RelayProcess]
) -> None:
    """Login and `tether rc` go to the first relay; Chromium opens the session at the second and approves the edit."""
    from playwright.async_api import expect

    first, second = two_relays
    run = start_rc(project, tether_env, first.url)
    try:
        assert run.url.startswith(f"{first.url}/s/")
        at_second = urlsplit(run.url)._replace(netloc=urlsplit(second.url).netloc).geturl()
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(at_second)
            status = page.get_by_test_id("connection-status")
            await expect(status).to_have_text("connected", timeout=10_000 * UNIT)
            await page.get_by_test_id("prompt-input").fill("write notes.txt across relays")
            await page.get_by_test_id("prompt-send").click()
            await page.get_by_test_id("approve-once").click(timeout=10_000 * UNIT)
            await expect(page.get_by_test_id("message").filter(has_text="wrote notes.txt")).to_have_count(
                1, timeout=10_000 * UNIT)  # fmt: skip
        assert "across relays" == (project / "notes.txt").read_text()
        assert 1 == (await first.metrics())["sessions"]  # the host's end is on the first relay
        assert 0 == (await second.metrics())["sessions"]
    finally:
        stop(run.process)

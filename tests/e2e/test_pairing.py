"""Pairing, paired devices and the end-to-end channel, through a real `tether rc`, relay and viewer (issue 9).

DESIGN.md rule 3: the fragment secret is single-use and short-lived, the same 6-digit
code shows on both screens, and only ``y`` at the terminal admits a new device, which
receives nothing of the session before. Paired devices are remembered and revocable.
Rule 2: the relay sees sizes and timing, never content (the capture test).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.conftest import TETHER, UNIT, Lines, RcRun, chromium, log_in, start_rc, stop
from tether.testing import ViewerClient, option_id

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page


def answer(run: RcRun, line: str) -> None:
    """Type a line at the terminal of `tether rc`."""
    assert run.process.stdin is not None
    run.process.stdin.write(line.encode() + b"\n")
    run.process.stdin.flush()


async def pair_phone(browser: Browser, run: RcRun, terminal: Lines) -> Page:
    """A phone-sized page that opens the link of ``run`` and is paired with y at its terminal: connected."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = await context.new_page()
    await page.goto(run.url)
    code = page.get_by_test_id("pairing-code")
    await expect(code).to_have_text(re.compile(r"^\d{6}$"), timeout=10_000 * UNIT)
    terminal.until(f"code {await code.text_content()}? [y/N]", 10 * UNIT)
    assert "#" not in page.url  # the secrets left the address bar at once
    answer(run, "y")
    await expect(page.get_by_test_id("connection-status")).to_have_text("connected", timeout=10_000 * UNIT)
    await expect(code).to_be_hidden()
    return page


def tether(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TETHER, *args], env=env, capture_output=True, text=True, timeout=60 * UNIT)


@pytest.fixture
def asking(project: Path, tether_env: dict[str, str], relay: str) -> Iterator[tuple[RcRun, Lines]]:
    """`tether rc` that asks at its terminal about every new device; its stderr lines."""
    run = start_rc(project, tether_env, relay, accept_device=False)
    assert run.process.stderr is not None
    yield run, Lines(run.process.stderr)
    stop(run.process)


async def test_a_new_device_gets_nothing_until_y_at_the_terminal(
    asking: tuple[RcRun, Lines], tether_env: dict[str, str]
) -> None:
    run, terminal = asking
    async with ViewerClient(run.url, wait_admitted=False) as viewer:
        code = await viewer.wait_for(lambda v: v.pairing_code, 10 * UNIT)
        terminal.until(f"code {code}? [y/N]", 10 * UNIT)  # the same code on both screens
        # Nothing of the session reached it (what it sends meanwhile is dropped: tests/unit/test_relay_link.py).
        assert not viewer.admitted and {} == viewer.entries
        answer(run, "y")
        await viewer.wait_for(lambda v: v.admitted, 10 * UNIT)
        await viewer.prompt("say on time")
        await viewer.wait_for(lambda v: v.texts("agent"), 10 * UNIT)
        assert ["say on time"] == viewer.texts("user")
    assert viewer.device.id in tether(tether_env, "devices").stdout


async def test_n_refuses_the_device_and_prints_a_new_url(asking: tuple[RcRun, Lines]) -> None:
    run, terminal = asking
    async with ViewerClient(run.url, wait_admitted=False) as viewer:
        code = await viewer.wait_for(lambda v: v.pairing_code, 10 * UNIT)
        terminal.until(f"code {code}? [y/N]", 10 * UNIT)
        answer(run, "n")
        await viewer.wait_for(lambda v: v.ended, 10 * UNIT)
        assert viewer.ended is not None and "refused" in viewer.ended and not viewer.admitted
    assert run.process.stdout is not None
    line = json.loads(Lines(run.process.stdout).next(10 * UNIT, "the new URL") or "{}")
    assert "refused" in line["new_url"] and line["url"] != run.url
    assert urlsplit(line["url"]).path == urlsplit(run.url).path  # the same session, a new secret
    # ... and a join token fresh from the relay, so the link works its whole 10 minutes however old the session.
    assert urlsplit(line["url"]).fragment.split("&")[0] != urlsplit(run.url).fragment.split("&")[0]
    # The new URL works (and asks again).
    async with ViewerClient(line["url"], wait_admitted=False) as second:
        code = await second.wait_for(lambda v: v.pairing_code, 10 * UNIT)
        terminal.until(f"code {code}? [y/N]", 10 * UNIT)


async def test_the_url_admits_no_one_once_a_device_paired(asking: tuple[RcRun, Lines]) -> None:
    run, terminal = asking
    async with ViewerClient(run.url, wait_admitted=False) as first:
        code = await first.wait_for(lambda v: v.pairing_code, 10 * UNIT)
        terminal.until(f"code {code}? [y/N]", 10 * UNIT)
        answer(run, "y")
        await first.wait_for(lambda v: v.admitted, 10 * UNIT)
    async with ViewerClient(run.url, wait_admitted=False) as replay:
        await replay.wait_for(lambda v: v.refused, 10 * UNIT)
        assert replay.refused is not None and "used already" in replay.refused and not replay.admitted


async def test_devices_accept_answers_from_another_shell_and_revoke_drops_the_device(
    asking: tuple[RcRun, Lines], tether_env: dict[str, str]
) -> None:
    run, terminal = asking
    async with ViewerClient(run.url, wait_admitted=False) as viewer:
        code = await viewer.wait_for(lambda v: v.pairing_code, 10 * UNIT)
        terminal.until(f"code {code}? [y/N]", 10 * UNIT)
        accepted = tether(tether_env, "devices", "accept", "--yes")
        assert 0 == accepted.returncode and "Pairing" in accepted.stdout, accepted.stderr
        await viewer.wait_for(lambda v: v.admitted, 10 * UNIT)
        await viewer.prompt("write notes.txt kept")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        revoked = tether(tether_env, "devices", "revoke", viewer.device.id)
        assert 0 == revoked.returncode, revoked.stderr
        await viewer.wait_for(lambda v: v.ended, 10 * UNIT)
        assert viewer.ended is not None and "revoked" in viewer.ended
        # Its live connection ends (the host has the relay drop it: 4403), so it can decide nothing more;
        # a decision it signed is refused anyway (tests/unit/test_signed_approvals.py).
        await viewer.wait_for(lambda v: v.closed, 10 * UNIT)
        assert 4403 == viewer.close_code and "pending" == approval["state"]
        terminal.until("was revoked", 10 * UNIT)
    assert viewer.device.id not in tether(tether_env, "devices").stdout


async def test_a_paired_device_is_admitted_by_a_later_session_without_asking(
    project: Path, tether_env: dict[str, str], relay: str
) -> None:
    first_run = start_rc(project, tether_env, relay, accept_device=False)
    assert first_run.process.stderr is not None
    try:
        async with ViewerClient(first_run.url, wait_admitted=False) as first:
            code = await first.wait_for(lambda v: v.pairing_code, 10 * UNIT)
            Lines(first_run.process.stderr).until(f"code {code}? [y/N]", 10 * UNIT)
            answer(first_run, "y")
            await first.wait_for(lambda v: v.admitted, 10 * UNIT)
    finally:
        stop(first_run.process)
    later = start_rc(project, tether_env, relay, accept_device=False)
    try:
        async with ViewerClient(later.url, device=first.device) as again:  # waits for admission: no question
            assert again.admitted
    finally:
        assert "[y/N]" not in later.stderr()


# -- what the relay sees -----------------------------------------------------------------------


class Capture:
    """A TCP proxy in front of the relay that keeps every byte each way, WebSocket masks removed."""

    def __init__(self, relay: str) -> None:
        parts = urlsplit(relay)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.up = bytearray()  # client -> relay
        self.down = bytearray()  # relay -> client
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._pumps: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Capture:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._pumps.add(asyncio.current_task())  # type: ignore[arg-type]
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, upstream_writer]
        up, down = bytearray(), bytearray()

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, kept: bytearray) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    kept += data
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(Exception):
                sink.close()

        await asyncio.gather(pump(reader, upstream_writer, up), pump(upstream_reader, writer, down))
        self.up += unmasked(bytes(up))
        self.down += bytes(down)

    def seen(self) -> bytes:
        return bytes(self.up) + bytes(self.down)


def unmasked(stream: bytes) -> bytes:
    """A client's bytes with each WebSocket frame's mask removed (RFC 6455 5.3), the HTTP upgrade kept as is."""
    head, _, rest = stream.partition(b"\r\n\r\n")
    out = bytearray(head + b"\r\n\r\n")
    at = 0
    while at + 2 <= len(rest):
        length, masked = rest[at + 1] & 0x7F, rest[at + 1] & 0x80
        header = 2
        if length == 126:
            length, header = int.from_bytes(rest[at + 2 : at + 4], "big"), 4
        elif length == 127:
            length, header = int.from_bytes(rest[at + 2 : at + 10], "big"), 10
        mask = rest[at + header : at + header + 4] if masked else b"\0\0\0\0"
        start = at + header + (4 if masked else 0)
        payload = rest[start : start + length]
        out += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        at = start + length
    return bytes(out)


async def test_the_relay_sees_no_content_and_no_secret(project: Path, tether_env: dict[str, str], relay: str) -> None:
    """Every byte through the relay during a session with a prompt, a streamed answer, a diff, an approval
    and command output: none of the markers, and not the fragment's secret."""
    async with Capture(relay) as capture:
        # In threads: the proxy serves on this event loop while these wait.
        await asyncio.to_thread(log_in, capture.url, tether_env, "captured")  # this machine, seen through the proxy
        run = await asyncio.to_thread(start_rc, project, tether_env, capture.url)
        try:
            secret = run.url.partition("&k=")[2]
            async with ViewerClient(run.url) as viewer:
                await viewer.prompt("say PROMPTMARK7 answered")
                await viewer.wait_for(lambda v: v.stop_reasons, 10 * UNIT)
                await viewer.prompt("write notes.txt FILEMARK7")
                approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
                await viewer.decide(approval["id"], option_id(approval, "allow_once"))
                await viewer.wait_for(lambda v: len(v.stop_reasons) == 2, 10 * UNIT)
                await viewer.prompt("run echo OUTPUT$((6+1))MARK")
                approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
                await viewer.decide(approval["id"], option_id(approval, "allow_once"))
                await viewer.wait_for(lambda v: len(v.stop_reasons) == 3, 10 * UNIT)
                tool_calls = json.dumps(viewer.of_type("tool_call"))
                assert "OUTPUT7MARK" in tool_calls and "FILEMARK7" in tool_calls  # the viewer did see them
            assert "FILEMARK7" == (project / "notes.txt").read_text()
        finally:
            stop(run.process)
    seen = capture.seen()
    assert (b"/v1/viewer/" in seen and b'"type": "credentials"' in seen) or b'"type":"credentials"' in seen  # decoded
    for marker in (b"PROMPTMARK7", b"FILEMARK7", b"OUTPUT7MARK", secret.encode()):
        assert marker not in seen


# -- the real page --------------------------------------------------------------------------------


async def test_pairing_and_a_signed_approval_in_the_real_page(
    project: Path, tether_env: dict[str, str], relay: str
) -> None:
    """Chromium shows the terminal's code; after y the page drives the session, and a later session admits
    the same browser without asking (its device key in IndexedDB)."""
    from playwright.async_api import expect

    run = start_rc(project, tether_env, relay, accept_device=False)
    assert run.process.stderr is not None
    terminal = Lines(run.process.stderr)
    try:
        async with chromium() as browser:
            page = await pair_phone(browser, run, terminal)
            await page.get_by_test_id("prompt-input").fill("write notes.txt signed")
            await page.get_by_test_id("prompt-send").click()
            await page.get_by_test_id("approve-once").click(timeout=10_000 * UNIT)
            await expect(page.get_by_test_id("message").filter(has_text="wrote notes.txt")).to_have_count(
                1, timeout=10_000 * UNIT)  # fmt: skip
            assert "signed" == (project / "notes.txt").read_text()
            # A reload comes back with the tab's resume secret: no new question, the conversation is there.
            await page.reload()
            await expect(page.get_by_test_id("connection-status")).to_have_text("connected", timeout=10_000 * UNIT)
            await expect(page.get_by_test_id("message").filter(has_text="wrote notes.txt")).to_have_count(1)
            terminal.until(") connected.", 10 * UNIT)  # back, as the device it is ("paired and connected" before)
            assert 1 == "".join(terminal.seen).count("[y/N]")
            stop(run.process)
            later = start_rc(project, tether_env, relay, accept_device=False)
            try:
                await page.goto(later.url)
                await expect(page.get_by_test_id("connection-status")).to_have_text(
                    "connected", timeout=10_000 * UNIT)  # fmt: skip
            finally:
                assert "[y/N]" not in later.stderr()
    finally:
        stop(run.process)


async def test_plain_http_elsewhere_says_why_the_page_cannot_work(rc: RcRun) -> None:
    """Off https and off 127.0.0.1/localhost the page has no WebCrypto: it says so, and sends nothing."""
    from playwright.async_api import expect

    port = urlsplit(rc.url).port
    async with chromium("--host-resolver-rules=MAP tether.test 127.0.0.1") as browser:
        page = await (await browser.new_context()).new_page()
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        await page.goto(rc.url.replace("127.0.0.1", "tether.test"))
        await expect(page.get_by_test_id("connection-status")).to_have_text(
            "ended: cannot encrypt", timeout=10_000 * UNIT)  # fmt: skip
        await expect(page.locator("#notice")).to_contain_text("not a secure context")
        assert [] == sockets and port is not None

"""The web viewer in real Chromium, against a real relay, with the host played by the test.

The host side is a plain WebSocket client on ``/v1/host/<id>`` that speaks
docs/protocol.md through tether's own SecureChannel (it answers the page's key offer with
the pairing secret it put in the URL, and admits whatever device says hello), so every
frame the page sends or gets is the real, sealed wire format. Set
TETHER_VIEWER_SCREENSHOT=path.png to keep 390x844 pictures of the approval test's page (at
that path) and of the login test's page (``*-login.png``).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import UNIT, chromium
from tether.protocol.channel import Channel
from tether.protocol.crypto import HostHandshake, KeyOffer, b64url
from tether.protocol.frames import Frame
from tether.protocol.messages import (
    Append,
    Authenticate,
    Cancel,
    Decide,
    Entry,
    Hello,
    Message,
    Prompt,
    SetMode,
    SetOption,
    Snapshot,
    Turn,
)
from tether.protocol.secure import SecureChannel, handshake_payload
from tether.protocol.signing import DeviceClaim, check_approval
from tether.testing import initiation_token

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
WAIT_MS = 10_000 * UNIT

SESSION = {"title": "demo-project", "agent": "demo", "cwd": "/home/dev/demo-project", "protocol": 2}
OPTIONS = [
    {"option_id": "allow", "name": "Allow", "kind": "allow_once"},
    {"option_id": "allow_always", "name": "Always allow", "kind": "allow_always"},
    {"option_id": "reject", "name": "Reject", "kind": "reject_once"},
]


def message(entry_id: str, role: str, text: str) -> dict[str, Any]:
    return {"id": entry_id, "type": "message", "role": role, "text": text}


def approval(state: str = "pending", outcome: str | None = None, by: str | None = None) -> dict[str, Any]:
    return {
        "id": "ap1",
        "type": "approval",
        "tool_call_id": "call1",
        "title": "Write notes.txt",
        "kind": "edit",
        "options": OPTIONS,
        "state": state,
        "outcome": outcome,
        "decided_by": by,
    }


EDIT = {
    "id": "call1",
    "type": "tool_call",
    "title": "Write notes.txt",
    "kind": "edit",
    "status": "pending",
    "locations": ["/home/dev/demo-project/notes.txt"],
    "content": [
        {
            "type": "diff",
            "path": "/home/dev/demo-project/notes.txt",
            "old_text": "first line\nold words\nlast line\n",
            "new_text": "first line\nnew words\nlast line\n",
        }
    ],
}


def controls(current: str = "default", remote: bool = False, thinking: bool = False) -> dict[str, Any]:
    return {
        "id": "controls",
        "type": "controls",
        "modes": {
            "current": current,
            "available": [
                {"id": "default", "name": "Default", "description": "Asks first", "self_approving": False},
                {"id": "plan", "name": "Plan", "description": None, "self_approving": False},
                {"id": "bypassPermissions", "name": "Bypass", "description": None, "self_approving": True},
            ],
        },
        "options": [
            {
                "id": "model",
                "name": "Model",
                "type": "select",
                "current": "small",
                "choices": [{"value": "small", "name": "Small"}, {"value": "large", "name": "Large"}],
                "self_approving_values": [],
            },
            {
                "id": "thinking",
                "name": "Thinking",
                "type": "boolean",
                "current": thinking,
                "choices": [],
                "self_approving_values": [],
            },
        ],
        "remote": remote,
    }


AGENT_LOGIN = {"id": "chatgpt", "name": "Log in with ChatGPT", "description": "Opens a browser", "kind": "agent"}
TERMINAL_LOGIN = {"id": "local", "name": "Log in on the machine", "kind": "terminal", "command": "claude /login"}
ENV_LOGIN = {"id": "key", "name": "Use an API key", "kind": "env_var", "vars": ["OPENAI_API_KEY"]}


def login(
    state: str = "needed", methods: tuple[dict[str, Any], ...] = (AGENT_LOGIN, TERMINAL_LOGIN, ENV_LOGIN)
) -> dict[str, Any]:
    return {"id": "login", "type": "login", "state": state, "methods": list(methods)}


def screenshot_path(suffix: str = "") -> str | None:
    """Where to keep a picture of the page (TETHER_VIEWER_SCREENSHOT, see module doc), or None."""
    path = os.environ.get("TETHER_VIEWER_SCREENSHOT")
    if not path or not suffix:
        return path
    kept = Path(path)
    return str(kept.with_name(f"{kept.stem}-{suffix}{kept.suffix}"))


class FakeHost:
    """The host end of a session, driven by the test (see module doc)."""

    def __init__(self, relay_url: str, fragment_size: int = 256 * 1024) -> None:
        self.session_id = secrets.token_urlsafe(16)
        self.relay_url = relay_url
        base = relay_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1).rstrip("/")
        self.socket_url = f"{base}/v1/host/{self.session_id}"
        self.page_url = f"{relay_url.rstrip('/')}/s/{self.session_id}"
        self.secret = os.urandom(32)  # the pairing secret of the URL's fragment
        self.device: DeviceClaim | None = None  # the page's device, from its hello
        self.secure = SecureChannel()
        self.secure.channel.fragment_size = fragment_size
        self.received: list[Message] = []
        self.controls: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FakeHost:
        token = initiation_token(ADMISSIONS[self.relay_url])
        headers = {"Authorization": f"Bearer {token}"}
        self._ws = await websockets.connect(self.socket_url, compression=None, additional_headers=headers)
        credentials = json.loads(await self._ws.recv())  # the relay's first word: this end's credentials
        self.page_url += f"#j={credentials['join']}&k={b64url(self.secret)}"
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Go away as a host whose process ends: the relay tells the viewer (close 4000)."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader

    @property
    def channel(self) -> Channel:
        """The sequencing under the sealing (for tests that send frames by hand)."""
        return self.secure.channel

    async def send(self, message: Message) -> None:
        await self.send_payload(message.serialize())

    async def send_payload(self, payload: bytes) -> None:
        """A payload sealed and sequenced as a message would be (kinds no Message class has)."""
        assert self._ws is not None
        for frame in self.secure.seal(payload):
            await self._ws.send(frame)

    async def send_raw(self, frame: bytes) -> None:
        assert self._ws is not None
        await self._ws.send(frame)

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for data in self._ws:
                if isinstance(data, str):
                    control = json.loads(data)
                    self.controls.append(control)
                    if control == {"type": "peer", "role": "viewer", "state": "joined"}:
                        self.secure = SecureChannel()  # protocol.md section 2: new keys, new sequence spaces
                elif self.secure.keys is None:
                    offer = KeyOffer.parse(handshake_payload(data))
                    handshake = HostHandshake(self.session_id, self.secret, os.urandom)
                    await self._ws.send(self.secure.accept(handshake, offer))
                else:
                    found = self.secure.open(data)
                    if found is not None:
                        self.received.append(found)
                async with self._changed:
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass

    async def wait_for(self, predicate: Callable[[list[Message]], Any], timeout: float = 10 * UNIT) -> Any:  # noqa: ASYNC109
        """Wait until ``predicate(received messages)`` is truthy and return its value."""
        async with asyncio.timeout(timeout), self._changed:
            while not (result := predicate(self.received)):
                await self._changed.wait()
            return result

    async def wait_for_kind(self, kind: type[Message], count: int = 1) -> Message:
        """The ``count``-th received message of one kind."""
        found = await self.wait_for(lambda got: [m for m in got if isinstance(m, kind)][count - 1 :])
        return found[0]  # type: ignore[no-any-return]


@pytest.fixture
async def relay_url() -> AsyncIterator[str]:
    """An embedded relay on 127.0.0.1 (memory broker), serving the viewer too."""
    from tether.relay.server import EmbeddedRelay, RelayConfig

    async with EmbeddedRelay(RelayConfig(host="127.0.0.1", port=0)) as relay:
        ADMISSIONS[relay.url] = relay.admission
        yield relay.url
        del ADMISSIONS[relay.url]


ADMISSIONS: dict[str, Any] = {}  # relay URL -> its admission, so a FakeHost can present a credential


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's headless Chromium (tests/conftest.py: chromium)."""
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A phone-sized page that fails the test on any script error or console error (CSP included)."""
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    new_page = await context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda error: errors.append(str(error)))
    new_page.on("console", lambda line: errors.append(line.text) if line.type == "error" else None)
    yield new_page
    await context.close()
    assert [] == errors


async def open_session(page: Any, host: FakeHost, entries: list[dict[str, Any]], running: bool = False) -> None:
    """Open the viewer on the host's session and answer its hello with a snapshot."""
    await page.goto(host.page_url)
    hello = await host.wait_for_kind(Hello)
    assert isinstance(hello, Hello)
    host.device = DeviceClaim.parse(hello.device)
    assert host.secure.keys is not None and host.device.proves(host.secure.keys.transcript)
    await host.send(Snapshot(session=SESSION, entries=entries, running=running))


async def test_snapshot_renders_roles_and_appends_stream(page: Any, relay_url: str) -> None:
    """A snapshot shows each message with its role; streamed appends extend the message."""
    from playwright.async_api import expect

    # Fragments of 7 bytes: every message is reassembled from many frames, some cut inside a UTF-8 character.
    async with FakeHost(relay_url, fragment_size=7) as host:
        await open_session(
            page,
            host,
            [
                message("m1", "system", "Session started"),
                message("m2", "user", "write notes.txt <b>please</b>"),
                message("m3", "thought", "The user wants a file."),
                message("m4", "agent", "Sure — "),
            ],
        )
        messages = page.get_by_test_id("message")
        await expect(messages).to_have_count(4, timeout=WAIT_MS)
        roles = [await m.get_attribute("data-role") for m in await messages.all()]
        assert ["system", "user", "agent", "agent"] == roles
        assert "thought" == await messages.nth(2).get_attribute("data-kind")
        # Text stays text: the markup-looking prompt is shown as typed, not parsed.
        await expect(messages.nth(1)).to_have_text("write notes.txt <b>please</b>")
        assert 0 == await page.locator("b").count()

        await host.send(Append(id="m4", text="writing it ✍️"))
        await host.send(Append(id="m4", text=" now."))
        await expect(messages.nth(3)).to_have_text("Sure — writing it ✍️ now.", timeout=WAIT_MS)
        await host.send(Entry(entry=message("m5", "agent", "Done.")))
        await expect(messages).to_have_count(5, timeout=WAIT_MS)
        await expect(page.get_by_test_id("connection-status")).to_contain_text("connected")


async def test_fragment_is_stripped_from_the_address_bar(page: Any, relay_url: str) -> None:
    """The secret-carrying fragment leaves the URL at once, and hello opens the connection."""
    async with FakeHost(relay_url) as host:
        await open_session(page, host, [])
        assert host.page_url.split("#")[0] == page.url
        assert "" == await page.evaluate("location.hash")


async def test_approve_once_sends_decide_and_resolves_the_card(page: Any, relay_url: str) -> None:
    """approve-once sends decide with the agent's option id; the decided entry drops the approval testid."""
    from playwright.async_api import expect

    async with FakeHost(relay_url) as host:
        await open_session(page, host, [message("m1", "user", "write notes.txt"), EDIT, approval()], running=True)
        card = page.get_by_test_id("approval")
        await expect(card).to_have_count(1, timeout=WAIT_MS)
        tool_call = page.get_by_test_id("tool-call")
        await expect(tool_call).to_contain_text("Write notes.txt")
        await expect(tool_call.locator(".line.del")).to_have_text("- old words")
        await expect(tool_call.locator(".line.add")).to_have_text("+ new words")
        assert "tool" == await page.get_by_test_id("message").nth(1).get_attribute("data-role")
        if screenshot := screenshot_path():
            await page.screenshot(path=screenshot)

        await card.get_by_test_id("approve-once").click()
        decide = await host.wait_for_kind(Decide)
        assert isinstance(decide, Decide) and ("ap1", "allow") == (decide.approval_id, decide.option_id)
        # Signed by the page's device key over exactly what it showed (issue 9): the host's check passes,
        # and the same signature does not pass for another option.
        assert host.device is not None
        signed = {"public_key": host.device.public_key, "session_id": host.session_id, "approval": approval(),
                  "tool_call": EDIT, "signature": decide.signature, "expires_ms": decide.expires, "now": time.time()}
        assert check_approval(option_id="allow", **signed) is None  # type: ignore[arg-type]
        assert check_approval(option_id="reject", **signed) is not None  # type: ignore[arg-type]
        await expect(card.get_by_test_id("approve-always")).to_be_disabled()
        await expect(card.get_by_test_id("deny")).to_be_disabled()

        await host.send(Entry(entry=approval("decided", "allow", "viewer")))
        await expect(page.get_by_test_id("approval")).to_have_count(0, timeout=WAIT_MS)
        await expect(page.get_by_test_id("approval-outcome")).to_have_text("Approved once (viewer)")


async def test_approvals_resolved_elsewhere_show_their_outcome(page: Any, relay_url: str) -> None:
    """A terminal denial and an expiry show as outcomes, not as pending cards."""
    from playwright.async_api import expect

    async with FakeHost(relay_url) as host:
        await open_session(page, host, [approval()])
        await expect(page.get_by_test_id("approval")).to_have_count(1, timeout=WAIT_MS)
        await host.send(Entry(entry=approval("decided", "reject", "terminal")))
        await expect(page.get_by_test_id("approval-outcome")).to_have_text("Denied (terminal)", timeout=WAIT_MS)
        await host.send(Entry(entry=approval("expired", "reject")))
        await expect(page.get_by_test_id("approval-outcome")).to_have_text("Expired", timeout=WAIT_MS)
        await expect(page.get_by_test_id("approval")).to_have_count(0)


async def test_prompt_enter_sends_and_stop_cancels_a_running_turn(page: Any, relay_url: str) -> None:
    """Enter sends the prompt (Shift+Enter is a newline); stop is enabled only while a turn runs."""
    from playwright.async_api import expect

    async with FakeHost(relay_url) as host:
        await open_session(page, host, [])
        stop = page.get_by_test_id("stop")
        await expect(page.get_by_test_id("prompt-send")).to_be_enabled(timeout=WAIT_MS)
        await expect(stop).to_be_disabled()

        box = page.get_by_test_id("prompt-input")
        await box.click()
        await box.press_sequentially("first line")
        await box.press("Shift+Enter")
        await box.press_sequentially("second line")
        await box.press("Enter")
        assert Prompt(text="first line\nsecond line") == await host.wait_for_kind(Prompt)
        await expect(box).to_have_value("")

        await box.fill("via the button")
        await page.get_by_test_id("prompt-send").click()
        assert Prompt(text="via the button") == await host.wait_for_kind(Prompt, 2)

        await host.send(Turn(running=True))
        await expect(stop).to_be_enabled(timeout=WAIT_MS)
        await expect(page.get_by_test_id("working")).to_be_visible()
        await stop.click()
        assert Cancel() == await host.wait_for_kind(Cancel)
        await host.send(Turn(running=False, stop_reason="cancelled"))
        await expect(stop).to_be_disabled(timeout=WAIT_MS)
        await expect(page.get_by_test_id("working")).to_be_hidden()


async def test_bad_frames_are_dropped_without_breaking_the_page(page: Any, relay_url: str) -> None:
    """Out-of-sequence, short and unknown-version frames are dropped; later frames still apply."""
    from playwright.async_api import expect

    async with FakeHost(relay_url) as host:
        await open_session(page, host, [message("m1", "agent", "hello")])
        await expect(page.get_by_test_id("message")).to_have_count(1, timeout=WAIT_MS)
        next_seq = host.channel.next_send_seq
        await host.send_raw(Frame(seq=next_seq + 5, payload=b'{"kind":"ended","reason":"x"}').serialize())
        await host.send_raw(b"\x01\x00")
        await host.send_raw(b"\x09" + Frame(seq=next_seq, payload=b"{}").serialize()[1:])
        await host.send(Entry(entry={"id": "z1", "type": "future_entry_type"}))
        await host.send_payload(b'{"kind":"future_kind"}')
        await host.send(Append(id="m1", text=", world"))
        await expect(page.get_by_test_id("message")).to_have_text("hello, world", timeout=WAIT_MS)
        await expect(page.get_by_test_id("connection-status")).to_contain_text("connected")


async def test_host_disconnect_ends_the_session(page: Any, relay_url: str) -> None:
    """When the host goes away the page says ended and stops taking input."""
    from playwright.async_api import expect

    async with FakeHost(relay_url) as host:
        await open_session(page, host, [message("m1", "agent", "bye soon")])
        await expect(page.get_by_test_id("connection-status")).to_contain_text("connected", timeout=WAIT_MS)
        await host.close()
    await expect(page.get_by_test_id("connection-status")).to_contain_text("ended", timeout=WAIT_MS)
    await expect(page.get_by_test_id("prompt-input")).to_be_disabled()
    await expect(page.get_by_test_id("prompt-send")).to_be_disabled()


async def test_a_link_without_its_credential_is_not_admitted(page: Any, relay_url: str) -> None:
    """A session link without a valid join credential (or to a session no host holds) says it is not admitted."""
    from playwright.async_api import expect

    await page.goto(f"{relay_url.rstrip('/')}/s/{secrets.token_urlsafe(16)}#j=made-up&k={b64url(os.urandom(32))}")
    await expect(page.get_by_test_id("connection-status")).to_have_text("ended: not admitted", timeout=WAIT_MS)
    await expect(page.locator("#notice")).to_contain_text("Ask for a new link", timeout=WAIT_MS)


async def test_js_frames_match_the_python_codec(page: Any, relay_url: str) -> None:
    """frames.js encodes byte for byte what tether.protocol.channel encodes, fragments included."""
    await page.goto(f"{relay_url.rstrip('/')}/s/{secrets.token_urlsafe(16)}")
    sample = {"kind": "prompt", "text": "größer als 7 bytes ✓"}
    js_frames = await page.evaluate(
        """async (sample) => {
            const { Channel } = await import(new URL("../assets/frames.js", location.href));
            return new Channel({ fragmentSize: 7 }).send(sample).map((f) => Array.from(new Uint8Array(f)));
        }""",
        sample,
    )
    python_frames = Channel(fragment_size=7).send(Prompt(text=sample["text"]))
    assert python_frames == [bytes(f) for f in js_frames]


async def test_controls_show_the_current_mode_and_send_set_mode(page: Any, relay_url: str) -> None:
    """The controls bar selects the current mode; choosing another sends set_mode and waits for the host."""
    from playwright.async_api import expect

    async with FakeHost(relay_url) as host:
        await open_session(page, host, [message("m1", "agent", "hi"), controls()])
        mode = page.get_by_test_id("mode-select")
        await expect(mode).to_have_value("default", timeout=WAIT_MS)
        await expect(page.get_by_test_id("message")).to_have_count(1)  # not in the transcript
        await expect(page.get_by_test_id("option-select")).to_have_attribute("data-option-id", "model")
        await expect(page.get_by_test_id("option-select")).to_have_value("small")
        await expect(mode.locator("option[value=bypassPermissions]")).to_have_text("Bypass — approves by itself")
        await expect(mode.locator("option[value=bypassPermissions]")).to_be_enabled()

        await mode.select_option("plan")
        assert SetMode(mode_id="plan") == await host.wait_for_kind(SetMode)
        await expect(mode).to_have_value("default")  # until the host confirms
        await host.send(Entry(entry=controls("plan")))
        await expect(mode).to_have_value("plan", timeout=WAIT_MS)

        await page.get_by_test_id("option-select").select_option("large")
        assert SetOption(option_id="model", value="large") == await host.wait_for_kind(SetOption)


async def test_remote_control_disables_self_approving_modes(page: Any, relay_url: str) -> None:
    """With remote on, a mode that approves by itself cannot be chosen; no controls at all hides the bar."""
    from playwright.async_api import expect

    async with FakeHost(relay_url) as host:
        await open_session(page, host, [controls(remote=True)])
        mode = page.get_by_test_id("mode-select")
        await expect(mode).to_have_value("default", timeout=WAIT_MS)
        await expect(mode.locator("option[value=bypassPermissions]")).to_be_disabled()
        await expect(mode.locator("option[value=plan]")).to_be_enabled()
        await expect(page.get_by_test_id("controls")).to_be_visible()

        await host.send(Entry(entry={**controls(), "modes": {"current": None, "available": []}, "options": []}))
        await expect(page.get_by_test_id("controls")).to_be_hidden(timeout=WAIT_MS)


async def test_boolean_option_toggles_and_sends_set_option(page: Any, relay_url: str) -> None:
    """A boolean option is a checkbox: a tap sends set_option true, the host's entry checks it."""
    from playwright.async_api import expect

    async with FakeHost(relay_url) as host:
        await open_session(page, host, [controls()])
        toggle = page.get_by_test_id("option-toggle")
        await expect(toggle).not_to_be_checked(timeout=WAIT_MS)
        assert "thinking" == await toggle.get_attribute("data-option-id")
        await toggle.click()
        assert SetOption(option_id="thinking", value=True) == await host.wait_for_kind(SetOption)
        await host.send(Entry(entry=controls(thinking=True)))
        await expect(toggle).to_be_checked(timeout=WAIT_MS)


async def test_login_card_authenticates_and_turns_into_logged_in(page: Any, relay_url: str) -> None:
    """An agent-side method sends authenticate and disables itself; a done entry shows Logged in."""
    from playwright.async_api import expect

    async with FakeHost(relay_url) as host:
        await open_session(page, host, [message("m1", "system", "Session started"), login(), controls(remote=True)])
        card = page.get_by_test_id("login")
        await expect(card).to_contain_text("The agent needs a login", timeout=WAIT_MS)
        await expect(card.locator("code")).to_have_text(["claude /login", "OPENAI_API_KEY"])
        if screenshot := screenshot_path("login"):
            await page.screenshot(path=screenshot)

        button = card.get_by_test_id("login-method")
        await expect(button).to_have_text("Log in with ChatGPT")
        await button.click()
        assert Authenticate(method_id="chatgpt") == await host.wait_for_kind(Authenticate)
        await expect(button).to_be_disabled()

        await host.send(Entry(entry=login("done")))
        await expect(page.get_by_test_id("login")).to_have_count(0, timeout=WAIT_MS)
        await expect(page.get_by_text("Logged in")).to_be_visible()


async def test_terminal_login_method_shows_its_command(page: Any, relay_url: str) -> None:
    """A terminal method shows the command to run on the machine and says to type /login there."""
    from playwright.async_api import expect

    async with FakeHost(relay_url) as host:
        await open_session(page, host, [login(methods=(TERMINAL_LOGIN,))])
        card = page.get_by_test_id("login")
        await expect(card.locator("code")).to_have_text("claude /login", timeout=WAIT_MS)
        await expect(card).to_contain_text("run this on the machine, then type /login there")
        await expect(card.get_by_test_id("login-method")).to_have_count(0)

"""The relay on real sockets: an embedded uvicorn on 127.0.0.1, clients with `websockets`.

Forwarding, routing refusals, bad input, slow readers, the end of a session, the viewer
page and /healthz. No test measures speed: each waits for the event it pins (a close, a
frame, a counter) with a timeout of a few UNITs, so a busy machine is slower, not red.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import UNIT
from tether.relay.broker import Attachment, MemoryBroker
from tether.relay.server import EmbeddedRelay, RelayConfig
from tether.testing import initiation_token

MAX_FRAME = 64 * 1024 + 64  # small, so oversized frames are cheap to send


@pytest.fixture
async def relay() -> AsyncIterator[EmbeddedRelay]:
    """An embedded relay on a free port of 127.0.0.1."""
    async with EmbeddedRelay(RelayConfig(port=0, max_frame_bytes=MAX_FRAME)) as embedded:
        yield embedded


def new_id() -> str:
    """A session id as hosts make them: 16 random bytes, base64url, 22 characters."""
    return secrets.token_urlsafe(16)


JOINS: dict[str, str] = {}  # session id -> the viewer-join token its host was given


async def connect(
    relay: EmbeddedRelay, role: str, session_id: str, credential: bool = True, **options: Any
) -> ClientConnection:
    """A WebSocket to one end of a session, without compression, as tether's clients connect.

    With ``credential`` it presents what a real end presents (docs/protocol.md, "Credentials"):
    the host a session-initiation token, the viewer its session's join token. The relay's
    ``credentials`` answer is read here (a refused end gets none: it is closed instead).
    """
    url = relay.url.replace("http://", "ws://", 1) + f"/v1/{role}/{session_id}"
    options.setdefault("max_size", 4 * MAX_FRAME)
    if role == "host" and credential:
        options["additional_headers"] = {"Authorization": f"Bearer {initiation_token(relay.admission)}"}
    ws = await websockets.connect(url, compression=None, open_timeout=5 * UNIT, **options)
    if role == "viewer" and credential:
        with contextlib.suppress(websockets.ConnectionClosed):  # a bad session id is closed at once
            await ws.send(json.dumps({"type": "join", "token": JOINS.get(session_id, "")}))
    if credential:
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            async with asyncio.timeout(5 * UNIT):
                first = json.loads(await ws.recv())
                if first.get("type") == "credentials" and "join" in first:
                    JOINS[session_id] = first["join"]
    return ws


async def closed(ws: ClientConnection, within: float = 5 * UNIT) -> tuple[int | None, str | None]:
    """Read until the relay closes ``ws`` (frames before the close are skipped): code and reason."""
    async with asyncio.timeout(within):
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason


async def control(ws: ClientConnection) -> dict[str, Any]:
    """The next message, which must be a relay control message (a text frame)."""
    message = await asyncio.wait_for(ws.recv(), 5 * UNIT)
    assert isinstance(message, str), f"expected a control message, got {len(message)} bytes"
    parsed: dict[str, Any] = json.loads(message)
    return parsed


async def pair(relay: EmbeddedRelay) -> tuple[str, ClientConnection, ClientConnection]:
    """A live session: host and viewer connected, both past their `peer joined`."""
    session_id = new_id()
    host = await connect(relay, "host", session_id)
    viewer = await connect(relay, "viewer", session_id)
    assert {"type": "peer", "role": "host", "state": "joined"} == await control(viewer)
    assert {"type": "peer", "role": "viewer", "state": "joined"} == await control(host)
    return session_id, host, viewer


async def health(relay: EmbeddedRelay) -> dict[str, Any]:
    """The relay's figures, as /metrics shows them to its operator (tests/integration/test_relay_operator.py)."""
    return {"ok": True, "sessions": await relay.broker.session_count(), "drops": relay.broker.counters.snapshot()}


async def still_forwards(relay: EmbeddedRelay) -> None:
    """A fresh session still carries a frame each way: the relay kept serving."""
    _, host, viewer = await pair(relay)
    await host.send(b"to viewer")
    await viewer.send(b"to host")
    assert (b"to viewer", b"to host") == (await viewer.recv(), await host.recv())
    await host.close()


async def test_frames_are_forwarded_byte_for_byte_both_ways(relay: EmbeddedRelay) -> None:
    """Binary frames of any content and size up to the limit arrive unchanged and in order, both ways."""
    _, host, viewer = await pair(relay)
    payloads = [b"", bytes(range(256)), b'{"type":"peer","role":"host","state":"left"}', secrets.token_bytes(MAX_FRAME)]
    for payload in payloads:
        await host.send(payload)
        await viewer.send(payload[::-1])
    assert payloads == [await viewer.recv() for _ in payloads]
    assert [payload[::-1] for payload in payloads] == [await host.recv() for _ in payloads]
    await host.close()


async def test_unknown_session_is_refused(relay: EmbeddedRelay) -> None:
    """A viewer for a session no host holds has no credential for it: closed 4401 `unauthorized`."""
    viewer = await connect(relay, "viewer", new_id())
    assert (4401, "unauthorized") == await closed(viewer)


@pytest.mark.parametrize("role", ["host", "viewer"])
async def test_each_role_is_taken_once(relay: EmbeddedRelay, role: str) -> None:
    """A second host or a second viewer of a live session is closed 4409; the first pair goes on both ways."""
    session_id, host, viewer = await pair(relay)
    second = await connect(relay, role, session_id)
    assert (4409, "session busy") == await closed(second)
    await host.send(b"to the first viewer")
    await viewer.send(b"to the first host")
    assert (b"to the first viewer", b"to the first host") == (await viewer.recv(), await host.recv())
    assert 1 == (await health(relay))["drops"]["session_busy"]
    await host.close()


@pytest.mark.parametrize("role", ["host", "viewer"])
@pytest.mark.parametrize(
    "session_id",
    ["short", "x" * 65, "semi;colon;is;not;ok", "dot.is.not.ok.either", "%C3%A9" * 8, "has%20spaces%20and%20more"],
)
async def test_bad_session_ids_are_refused(relay: EmbeddedRelay, role: str, session_id: str) -> None:
    """A malformed session id is closed 4400 `bad session id`, for either role."""
    ws = await connect(relay, role, session_id)
    assert (4400, "bad session id") == await closed(ws)


async def test_oversized_frame_closes_that_connection_only(relay: EmbeddedRelay) -> None:
    """A frame over the limit closes its sender 1009; its host hears `left`; other sessions go on."""
    _, other_host, other_viewer = await pair(relay)
    _, host, viewer = await pair(relay)
    await viewer.send(b"x" * (MAX_FRAME + 1))
    assert 1009 == (await closed(viewer))[0]
    assert {"type": "peer", "role": "viewer", "state": "left"} == await control(host)
    await other_host.send(b"unaffected")
    assert b"unaffected" == await other_viewer.recv()
    await still_forwards(relay)
    assert 1 == (await health(relay))["drops"]["oversized"]


async def test_text_frames_get_an_error_and_are_counted(relay: EmbeddedRelay) -> None:
    """Garbage in a text frame is answered `malformed` and counted; it is not forwarded; the session goes on."""
    _, other_host, other_viewer = await pair(relay)
    _, host, viewer = await pair(relay)
    await viewer.send("{garbage, not even json")
    await host.send("")
    for ws in (viewer, host):
        error = await control(ws)
        assert ("error", "malformed") == (error["type"], error["reason"])
    await viewer.send(b"after the garbage")
    assert b"after the garbage" == await host.recv()  # the text frame was not forwarded before it
    await other_host.send(b"other session")
    assert b"other session" == await other_viewer.recv()
    assert 2 == (await health(relay))["drops"]["malformed"]
    await host.close()


async def test_text_frame_that_is_not_utf8_is_closed_and_counted(relay: EmbeddedRelay) -> None:
    """Invalid UTF-8 in a text frame is closed 1007 by the WebSocket layer, counted `malformed`."""
    _, host, viewer = await pair(relay)
    await viewer.send(b"\xff\xfe not utf-8", text=True)
    assert 1007 == (await closed(viewer))[0]
    assert {"type": "peer", "role": "viewer", "state": "left"} == await control(host)
    await still_forwards(relay)
    assert 1 == (await health(relay))["drops"]["malformed"]


async def test_host_leaving_ends_the_session_at_once(relay: EmbeddedRelay) -> None:
    """The viewer gets the host's last frame, then 4000 (no grace); the relay forgets the session (4404 after)."""
    session_id, host, viewer = await pair(relay)
    await host.send(b"last words")
    await host.close()
    assert b"last words" == await viewer.recv()
    assert (4000, "session ended") == await closed(viewer)
    assert 0 == (await health(relay))["sessions"]
    late = await connect(relay, "viewer", session_id)  # with the session's join token: no host holds it
    assert 4404 == (await closed(late))[0]


async def test_host_hears_joined_before_the_viewers_first_frame(relay: EmbeddedRelay) -> None:
    """A viewer that sends at once: the host still gets `joined` first, then the frame."""
    session_id = new_id()
    host = await connect(relay, "host", session_id)
    viewer = await connect(relay, "viewer", session_id)
    await viewer.send(b"first frame")
    assert {"type": "peer", "role": "viewer", "state": "joined"} == await control(host)
    assert b"first frame" == await host.recv()
    await host.close()


async def test_viewer_leaving_is_told_to_the_host(relay: EmbeddedRelay) -> None:
    """The host hears `left`; the seat is free again and the next viewer is announced."""
    session_id, host, viewer = await pair(relay)
    await viewer.close()
    assert {"type": "peer", "role": "viewer", "state": "left"} == await control(host)
    again = await connect(relay, "viewer", session_id)
    assert "joined" == (await control(again))["state"]
    assert {"type": "peer", "role": "viewer", "state": "joined"} == await control(host)
    await host.close()


async def test_host_frames_without_viewer_are_dropped_and_counted(relay: EmbeddedRelay) -> None:
    """A host frame with nobody to take it is dropped as `no_peer`; the host stays connected."""
    host = await connect(relay, "host", new_id())
    await host.send(b"into the void")
    await host.send("text")  # answered, so we know the frame before it was handled
    assert "malformed" == (await control(host))["reason"]
    assert 1 == (await health(relay))["drops"]["no_peer"]
    await host.close()


async def test_healthz_shows_sessions_and_every_drop_reason(relay: EmbeddedRelay) -> None:
    """The operator's figures count live sessions and refusals by reason, every reason listed."""
    _, host, _viewer = await pair(relay)
    assert 4401 == (await closed(await connect(relay, "viewer", new_id())))[0]
    assert 4400 == (await closed(await connect(relay, "host", "bad")))[0]
    document = await health(relay)
    assert (True, 1) == (document["ok"], document["sessions"])
    expected = {
        "bad_session_id": 1,
        "unknown_session": 0,
        "unauthorized": 1,
        "session_busy": 0,
        "malformed": 0,
        "oversized": 0,
        "no_peer": 0,
        "too_slow": 0,
        "internal": 0,
        "too_many_sessions": 0,
        "over_capacity": 0,
        "idle": 0,
        "bad_request": 0,
        "bad_origin": 0,
    }
    assert expected == document["drops"]
    await host.close()


async def test_slow_reader_is_cut_off() -> None:
    """A viewer that does not read, its queue full for slow_timeout, is closed 4408 `too slow` and counted."""
    config = RelayConfig(port=0, max_frame_bytes=MAX_FRAME, queue_bytes=4 * MAX_FRAME, slow_timeout=0.2 * UNIT)
    async with EmbeddedRelay(config) as relay:
        _, host, viewer = await pair(relay)
        frame = secrets.token_bytes(MAX_FRAME)

        async def flood() -> None:
            # More than loopback socket buffers hold, so the relay's queue for the viewer fills.
            for _ in range(600):
                await host.send(frame)

        sender = asyncio.create_task(flood())
        assert {"type": "peer", "role": "viewer", "state": "left"} == await control(host)
        await asyncio.wait_for(sender, 10 * UNIT)
        assert 1 == (await health(relay))["drops"]["too_slow"]
        assert (4408, "too slow") == await closed(viewer, within=10 * UNIT)
        await host.close()


async def test_shutdown_closes_every_connection_1001() -> None:
    """Leaving the relay's context closes host and viewer 1001; clients that take the close end it, not the grace."""
    # A grace far longer than the timeout: the stop must come from the closes, not from waiting it out.
    relay = EmbeddedRelay(RelayConfig(port=0, shutdown_grace=600 * UNIT))
    async with asyncio.timeout(10 * UNIT):
        async with relay:
            _, host, viewer = await pair(relay)
    assert [(1001, "relay shutting down")] * 2 == [await closed(host), await closed(viewer)]


async def test_garbage_instead_of_http_does_not_hurt_the_relay(relay: EmbeddedRelay) -> None:
    """Bytes that are not HTTP on the relay's port are refused; the relay goes on serving."""
    host, port = relay.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(secrets.token_bytes(4096) + b"\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(5 * UNIT):
        await reader.read()  # the relay answers (400) or hangs up, either way it ends
    writer.close()
    await still_forwards(relay)


async def test_viewer_page_is_served_with_strict_headers(relay: EmbeddedRelay) -> None:
    """/s/<id> is the viewer page: CSP of this origin only, no framing, no referrer; /assets serves nothing else."""
    async with httpx.AsyncClient(timeout=5 * UNIT) as client:
        page = await client.get(f"{relay.url}/s/{new_id()}")
        script = await client.get(f"{relay.url}/assets/app.js")
        missing = await client.get(f"{relay.url}/assets/nothing-here.js")
        escape = await client.get(f"{relay.url}/assets/..%2F__init__.py")
    assert (200, "text/html") == (page.status_code, page.headers["content-type"].split(";")[0])
    assert 'data-testid="connection-status"' in page.text and 'data-testid="prompt-input"' in page.text
    csp = page.headers["content-security-policy"]
    policy = {name: value for name, _, value in (d.strip().partition(" ") for d in csp.split(";"))}
    assert ["'self'"] * 3 == [policy["default-src"], policy["script-src"], policy["style-src"]]
    assert ["'none'"] * 2 == [policy["frame-ancestors"], policy["base-uri"]]
    assert not any(word in csp for word in ("*", "unsafe-", "http:", "https:")), csp
    assert ("no-referrer", "nosniff") == (page.headers["referrer-policy"], page.headers["x-content-type-options"])
    assert (200, "text/javascript") == (script.status_code, script.headers["content-type"].split(";")[0])
    assert [404, 404] == [missing.status_code, escape.status_code]


async def test_a_flood_from_one_session_does_not_stop_another(relay: EmbeddedRelay) -> None:
    """While one session carries thousands of frames, another session's frame still arrives; the flood arrives whole."""
    _, host, viewer = await pair(relay)
    _, other_host, other_viewer = await pair(relay)
    frames = [i.to_bytes(4, "big") + b"f" * 1020 for i in range(2000)]

    async def flood() -> None:
        for frame in frames:
            await host.send(frame)

    sender = asyncio.create_task(flood())
    assert frames[0] == await asyncio.wait_for(viewer.recv(), 5 * UNIT)  # the flood is under way
    await other_host.send(b"ping")
    assert b"ping" == await asyncio.wait_for(other_viewer.recv(), 5 * UNIT)
    received = [frames[0]] + [await asyncio.wait_for(viewer.recv(), 5 * UNIT) for _ in frames[1:]]
    await asyncio.wait_for(sender, 5 * UNIT)
    assert frames == received
    await host.close()
    await other_host.close()


class BrokenBroker(MemoryBroker):
    """A broker with a bug: forwarding the frame ``b"boom"`` raises."""

    async def forward(self, attachment: Attachment, frame: bytes) -> None:
        if frame == b"boom":
            raise ValueError("a bug in the broker")
        await super().forward(attachment, frame)


async def test_a_bug_closes_one_connection_1011_and_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    """An exception inside the relay closes only that connection (1011), is logged and counted `internal`."""
    async with EmbeddedRelay(RelayConfig(port=0), broker=BrokenBroker()) as relay:
        _, host, viewer = await pair(relay)
        await viewer.send(b"boom")
        assert (1011, "relay error") == await closed(viewer)
        assert {"type": "peer", "role": "viewer", "state": "left"} == await control(host)
        await still_forwards(relay)
        assert 1 == (await health(relay))["drops"]["internal"]
    assert "relay endpoint failed" in caplog.text


async def test_embedded_relay_leaves_signal_handlers_alone() -> None:
    """Running and stopping an embedded relay changes no signal handler of the host process."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    async with EmbeddedRelay() as relay:
        during = {sig: signal.getsignal(sig) for sig in before}
        await still_forwards(relay)
    after = {sig: signal.getsignal(sig) for sig in before}
    assert [before, before] == [during, after]

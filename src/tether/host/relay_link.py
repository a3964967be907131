"""RelayLink: the host's outbound WebSocket to the relay, mirroring one session.

The host only ever dials out. The link registers the session at
``/v1/host/{session_id}``, turns the session's messages into frames (Channel) for the
viewer, and turns the viewer's frames into calls on the session. Text frames are the
relay's own control messages (peer joined/left, errors); binary frames are the viewer's,
and the relay never looks inside them.

Credentials (docs/protocol.md section 1): ``connect(token)`` presents a session-initiation
token; the relay answers with a ``credentials`` message carrying this end's routing token
and the session's viewer-join token, which goes in the fragment of ``url``. The link
renews its routing token in-band at half its lifetime.

Calling contract: ``await connect(token)`` once (RelayUnreachable if it fails), ``deliver``
from the session for every message, ``await close()`` once at the end; ``lost`` is set
with a reason when Remote Control is over by itself: the relay link stayed away longer than
the outage window (``outage_ended`` is then True), or the link failed.

Surviving the network (DESIGN.md rule 7, docs/protocol.md "Reconnection"): a relay
connection that drops (or stalls: a ping every ``HEARTBEAT`` seconds, a dead link is
noticed within two) is not the end. The pure ``LinkState`` (host/link_state.py) decides
when to dial again and when the window is over; this link only pumps its events and
effects. It comes back to the same session id with its routing token, or, once that has
lapsed or was refused, with a fresh initiation token (``initiate``) and the routing token
beside it (``Tether-Resume``), so the session keeps its generation at the relay and the
viewer's link and tokens still work. The pairing state, paired devices, resume secrets and
the session's transcript stay here meanwhile: a viewer comes back with its resume secret,
without a new question, and gets the host's snapshot.

End to end (docs/protocol.md section 2, DESIGN.md rules 2 and 3): each viewer connection
starts with a handshake whose salt is the pairing secret in the URL's fragment (or the
resume secret of the browser's last admitted connection), and every later frame is sealed
(protocol/secure.py). Who is admitted is decided by the pure ``Pairing`` (host/pairing.py);
the link carries out its effects: the key reply, the terminal's question through
``Questions``, admitting a device to the session core, refusing one, a new URL.

The link decides nothing about the session: each viewer message becomes a ``FromScreen``
event for the session core. What waits for a slow viewer is bounded (``OUTBOX_BYTES``,
``OUTBOX_MESSAGES``): past that, what was queued is dropped and the viewer gets a fresh
snapshot from the host's transcript instead (``ViewerBehind``), never unbounded memory.
A bad frame from the viewer is dropped and counted; nothing it sends stops the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection

from tether.config import Config
from tether.errors import RelayUnreachable, RemoteProtocolError, UserError
from tether.host import link_state as ls
from tether.host import netwatch, tls
from tether.host import pairing as pair
from tether.host.core.events import DeviceAdmitted, DeviceGone, FromScreen, ViewerBehind
from tether.host.live import LiveSessions
from tether.host.paired import PairedDevices, PairingRequests
from tether.protocol.crypto import KeyOffer, b64url
from tether.protocol.frames import MAX_FRAME_BYTES
from tether.protocol.messages import Ended, Hello, Message, Sessions
from tether.protocol.secure import SecureChannel, handshake_payload, refusal
from tether.protocol.signing import DeviceClaim

if TYPE_CHECKING:
    from tether.host.session import HostSession

log = logging.getLogger(__name__)

FLUSH_TIMEOUT = 1.0  # seconds to get "ended" out before closing
CREDENTIALS_TIMEOUT = 10.0  # seconds the relay has to send this end's credentials
OUTBOX_BYTES = 8 * 1024 * 1024  # what may wait for a slow viewer; past it the viewer resyncs
OUTBOX_MESSAGES = 4096
VIEWER = "viewer"  # the screen name of the (one) viewer in the session core
WATCH_INTERVAL = 1.0  # seconds between looks at the pairing secret's age and the paired-devices file
ROTATE_WAIT = 2.0  # seconds a new URL waits for the fresh join token it should carry, at most
HEARTBEAT = 5.0  # seconds between pings to the relay, and for each answer: a dead link is noticed within 10 s
REDIAL_TIMEOUT = 5.0  # seconds one attempt to come back may take to open
ROUTING_MARGIN = 30.0  # seconds before its expiry a routing token is no longer tried to come back with
PROBE_TIMEOUT = 2.0  # seconds a live connection has to answer a ping once the network under it changed
DROP_VIEWER = '{"type":"drop","role":"viewer"}'  # the relay closes a viewer this host refused (4403): no seat held


class Questions(Protocol):
    """The terminal, as the link needs it: a yes/no question, lines, a new session URL."""

    def ask(self, question: str, answer: Any) -> None: ...  # answer(yes: bool), once
    def withdraw(self, why: str) -> None: ...
    def say(self, text: str) -> None: ...
    def new_url(self, url: str, why: str) -> None: ...


class Unattended:
    """No terminal to ask: log what would be said; a question is left unanswered (``tether rc`` as a service)."""

    def ask(self, question: str, answer: Any) -> None:
        log.warning("%s (no terminal to answer; use --accept-device for unattended use)", question)

    def withdraw(self, why: str) -> None:
        pass

    def say(self, text: str) -> None:
        log.info("%s", text)

    def new_url(self, url: str, why: str) -> None:
        log.info("a new session URL (%s)", why)


def _shown(name: str) -> str:
    """A device's self-chosen name, printable on one line."""
    return "".join(c if c.isprintable() else "?" for c in name)[:80]


def new_session_id() -> str:
    """16 random bytes, base64url: the session's name at the relay."""
    return secrets.token_urlsafe(16)


def outage_clock() -> float:
    """Seconds of a clock that keeps counting through a laptop's sleep (the outage window is real time)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


def _websocket_url(relay: str, path: str) -> str:
    parts = urlsplit(relay)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise RelayUnreachable(f"the relay URL {relay!r} is not an http(s):// or ws(s):// URL")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))


def viewer_url(relay: str, session_id: str) -> str:
    """The session URL a browser opens (secret material will go in the fragment)."""
    parts = urlsplit(relay)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + f"/s/{session_id}", "", ""))


class RelayLink:
    """See module doc."""

    name = VIEWER

    def __init__(
        self,
        session: HostSession,
        relay: str,
        session_id: str | None = None,
        ssl: Any = None,
        public_url: str | None = None,
        questions: Questions | None = None,
        devices: PairedDevices | None = None,
        accept_device: bool = False,
        takeover: str | None = None,
        initiate: Callable[[], Awaitable[str]] | None = None,
        outage_window: float = ls.OUTAGE_WINDOW,
    ) -> None:
        self.session = session
        self.initiate = initiate  # a fresh session-initiation token, to come back once the routing one lapsed
        self.outage = ls.LinkState(outage_window)
        self.outage_ended = False  # lost because the relay link stayed away longer than the window
        self._routing_until = 0.0  # wall-clock expiry of ``routing``
        self._fresh_proof = False  # the relay refused the routing token: come back with an initiation token
        self._last_close: int | None = None
        self._admitted = False  # the first connection was admitted (later losses are outages)
        self._writer: asyncio.Task[None] | None = None
        self._redial: asyncio.Task[None] | None = None
        self._dialing = False  # an attempt to come back is connecting (a new Dial waits for its outcome)
        self._netwatch: netwatch.NetWatch | None = None
        self._probing = False
        self.relay = relay
        # The relay as browsers reach it (a tunnel's https address); the link itself dials ``relay``.
        self.public_url = public_url or relay
        self.ssl = ssl
        self.session_id = session_id or new_session_id()
        self.routing: str | None = None
        self.join: str | None = None
        self._credentials = asyncio.Event()
        self._renewal: asyncio.TimerHandle | None = None
        # A new URL waits for a fresh viewer-join token (asked for with a renewal): (why, fallback timer).
        self._rotating: tuple[str, asyncio.TimerHandle] | None = None
        self.questions: Questions = questions or Unattended()
        self.devices = devices or PairedDevices()
        self.requests = PairingRequests(self.devices.path.parent)
        self._asked: tuple[str, str] | None = None  # (device id, code) of the open pairing question
        if takeover is None:  # remote.takeover: may a paired device take over without a question?
            takeover = str(Config().get("remote.takeover"))
        self.pairing = pair.Pairing(
            self.session_id, os.urandom, self.devices.key, time.monotonic(), accept_device, takeover
        )
        self.secure = SecureChannel()
        self.viewer_ready = False
        self.drops = 0
        self.resyncs = 0
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._ws: ClientConnection | None = None
        self._outbox: deque[tuple[bytes | str, bool]] = deque()
        self._hello = Hello()
        self._outbox_bytes = 0
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._devices_stamp = self.devices.stamp()
        # The user's other live sessions, for a device the user confirmed (host/live.py).
        self.live = LiveSessions(self.devices.path.parent)
        self._share_live = not accept_device
        self._live_stamp: tuple[tuple[str, int], ...] | None = None

    @property
    def url(self) -> str:
        """The session URL: the relay's page, the join credential and the pairing secret in the fragment."""
        base = viewer_url(self.public_url, self.session_id)
        if self.join is None:
            return base
        return f"{base}#j={self.join}&k={b64url(self.pairing.secret)}"

    async def connect(self, token: str) -> None:
        """Register the session at the relay with a session-initiation token; wait for this end's credentials."""
        failure = await self._open({"Authorization": f"Bearer {token}"}, 10.0)
        if failure is not None:
            await self.close()
            raise RelayUnreachable(f"the relay at {self.relay} did not admit this session: {failure}")
        self._admitted = True
        self._netwatch = netwatch.watch(self._network_changed)
        self._start(self._watch())

    def _start(self, work: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    async def _open(self, headers: dict[str, str], open_timeout: float) -> str | None:
        """One connection to the relay: dial, pump it both ways, wait for this end's credentials.

        None once the relay admitted it; else why not (that connection is closed). Raises
        RelayUnreachable when the relay cannot be dialled at all.
        """
        target = _websocket_url(self.relay, f"/v1/host/{self.session_id}")
        tls.check_relay_url(target)  # before anything crosses the network (host/tls.py)
        options: dict[str, Any] = {"ssl": self.ssl or tls.relay_context()} if target.startswith("wss:") else {}
        try:
            # permessage-deflate off: it cut forwarding throughput 6-20x when measured.
            ws = await websockets.connect(
                target, compression=None, max_size=MAX_FRAME_BYTES, open_timeout=open_timeout,
                ping_interval=HEARTBEAT, ping_timeout=HEARTBEAT, additional_headers=headers, **options,
                # A dead link answers no close frame either: wait for one no longer than for "ended" to go out
                # (websockets' default, 10 s, doubled the time a blackholed link took to be noticed).
                close_timeout=FLUSH_TIMEOUT,
            )  # fmt: skip
        except ssl.SSLCertVerificationError as exc:
            raise RelayUnreachable(
                f"the relay at {self.relay} is not who it claims to be ({exc.verify_message}); "
                "if it uses a private CA, pass --relay-ca FILE (or set relay.ca)"
            ) from None
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise RelayUnreachable(f"cannot reach the relay at {self.relay}: {exc}") from None
        self._ws = ws
        self._credentials.clear()
        gone: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._start(self._read(ws, gone))
        self._writer = self._start(self._write(ws))
        waiting: asyncio.Future[Any] = asyncio.ensure_future(self._credentials.wait())
        ends: list[asyncio.Future[Any]] = [waiting, gone, self.lost]
        await asyncio.wait(ends, timeout=CREDENTIALS_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if self._credentials.is_set() and not gone.done():
            self._fresh_proof = False
            return None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), FLUSH_TIMEOUT)
        return gone.result() if gone.done() else "no credentials in time"

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("the relay link failed", exc_info=exc)
            self._lose(f"the relay link failed: {exc!r}")

    def _lose(self, reason: str) -> None:
        if not self._closing and not self.lost.done():
            self.lost.set_result(reason)

    def deliver(self, message: Message) -> None:
        """Queue a session message for the viewer (dropped while no viewer is admitted)."""
        if not (self.viewer_ready or (isinstance(message, Ended) and self.secure.keys is not None)):
            return
        try:
            payload = message.serialize()
        except Exception:  # a bug on this side: log it, keep the link
            log.exception("could not serialize a %s message", message.KIND)
            return
        if self._outbox_bytes + len(payload) > OUTBOX_BYTES or len(self._outbox) >= OUTBOX_MESSAGES:
            # The viewer cannot keep up: forget what waits, send it the transcript afresh.
            self._outbox.clear()
            self._outbox_bytes = 0
            self.resyncs += 1
            self.session.handle(ViewerBehind(VIEWER))
            if isinstance(message, Ended):
                self._push(payload)
            return
        self._push(payload)

    def _push(self, payload: bytes | str, sealed: bool = True) -> None:
        """Queue a message payload (sealed when it is written) or, ``sealed=False``, a ready handshake frame
        (or a text control message for the relay, sent in order after what was queued before it)."""
        self._outbox.append((payload, sealed))
        self._outbox_bytes += len(payload)
        self._drained.clear()
        self._wakeup.set()

    async def _write(self, ws: ClientConnection) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._outbox:
                payload, sealed = self._outbox.popleft()
                self._outbox_bytes -= len(payload)
                try:
                    for frame in self.secure.seal(payload) if sealed and isinstance(payload, bytes) else [payload]:
                        await ws.send(frame)
                except websockets.ConnectionClosed:
                    return
            self._drained.set()

    async def _read(self, ws: ClientConnection, gone: asyncio.Future[str]) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for data in ws:
                if isinstance(data, str):
                    self._control(data)
                else:
                    self._frame(data)
        received = ws.protocol.close_rcvd  # None: no close frame (the network, a ping timeout)
        self._last_close = received.code if received is not None else None
        said = f"{received.code} {received.reason}".strip() if received is not None else "no close frame"
        reason = f"the relay connection closed ({said})"
        if not gone.done():
            gone.set_result(reason)
        if ws is self._ws:
            self._connection_lost(reason)

    def _connection_lost(self, reason: str) -> None:
        """The relay connection ended: its viewer is gone; unless the link is closing, it is away (link_state.py)."""
        self._ws = None
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        if self._renewal is not None:
            self._renewal.cancel()
        self._forget_viewer()
        self._drained.set()
        if self.pairing.phase is not pair.Phase.IDLE:
            self._pair(pair.Left())
        if self._admitted and not self._closing:
            self._outage(ls.Lost(outage_clock(), reason))

    def _forget_viewer(self) -> None:
        """The viewer connection is over: each one starts new sequence spaces and new keys, and nothing queued
        for the previous viewer may reach the next."""
        if self.viewer_ready:
            self.session.handle(DeviceGone(VIEWER))
        self.viewer_ready = False
        self.secure = SecureChannel()
        self._outbox.clear()
        self._outbox_bytes = 0

    def _outage(self, event: ls.Event) -> None:
        """Carry out what the link's rules (host/link_state.py) say to ``event``."""
        for effect in self.outage.handle(event):
            if isinstance(effect, ls.Say):
                self.questions.say(effect.text)
            elif isinstance(effect, ls.Dial):
                if self._dialing:
                    continue  # the attempt under way says soon enough whether the relay is back
                if self._redial is not None:
                    self._redial.cancel()
                self._redial = self._start(self._come_back(effect.delay))
            else:
                self.outage_ended = True
                self._lose(effect.reason)

    async def _come_back(self, delay: float) -> None:
        """One attempt to take the session back at the relay, after ``delay`` seconds."""
        await asyncio.sleep(delay)
        self._dialing = True
        try:
            failure = await self._open(await self._comeback_headers(), REDIAL_TIMEOUT)
        except UserError as exc:  # unreachable, or the relay refused this device: tried again until the window ends
            failure = str(exc)
        finally:
            self._dialing = False
        self._redial = None
        if self._closing or self.lost.done():
            return
        if failure is None:
            self._outage(ls.Back(outage_clock()))
            return
        if self._last_close == 4401:  # the routing token was refused (lapsed, or another relay's clock)
            self._fresh_proof = True
        log.info("the relay link is still away: %s", failure)
        self._outage(ls.Failed(outage_clock(), random.random()))

    def _network_changed(self) -> None:
        """The machine's network changed (host/netwatch.py): away, dial now; live, make sure the link still answers."""
        if self._closing or self.lost.done():
            return
        if self.outage.phase is ls.Phase.AWAY:
            self._outage(ls.NetworkBack(outage_clock()))
        elif self._ws is not None and not self._probing:
            self._start(self._probe(self._ws))

    async def _probe(self, ws: ClientConnection) -> None:
        """A ping that must be answered within PROBE_TIMEOUT, else the connection is dropped (and the link away)."""
        self._probing = True
        try:
            pong = await ws.ping()
            await asyncio.wait_for(pong, PROBE_TIMEOUT)
        except TimeoutError:
            log.info("the relay link did not answer after a network change")
            ws.transport.abort()
        except websockets.ConnectionClosed:
            pass  # the reader sees it too
        finally:
            self._probing = False

    async def _comeback_headers(self) -> dict[str, str]:
        """The routing token while it is good; else a fresh initiation token, the routing token naming the session."""
        assert self.routing is not None
        self._last_close = None
        if self.initiate is None or (not self._fresh_proof and time.time() < self._routing_until - ROUTING_MARGIN):
            return {"Authorization": f"Bearer {self.routing}"}
        return {"Authorization": f"Bearer {await self.initiate()}", "Tether-Resume": self.routing}

    def _control(self, text: str) -> None:
        try:
            control = json.loads(text)
        except ValueError:
            log.warning("relay sent a malformed control message")
            return
        if not isinstance(control, dict):
            log.warning("relay sent a malformed control message")
        elif control.get("type") == "peer" and control.get("role") == "viewer":
            self._forget_viewer()
            if control.get("state") == "joined":
                self._pair(pair.Joined())
            else:  # `replaced`: the relay closed it for a viewer taking over (host/pairing.py decides)
                self._pair(pair.Left(replaced=control.get("reason") == "replaced"))
        elif control.get("type") == "credentials" and isinstance(control.get("routing"), str):
            self._take_credentials(control)
        elif control.get("type") == "error":
            log.warning("relay refused a frame: %s", control.get("detail") or control.get("reason"))

    def _take_credentials(self, control: dict[str, Any]) -> None:
        self.routing = control["routing"]
        if isinstance(control.get("expires_in"), int | float):
            self._routing_until = time.time() + control["expires_in"]
        if isinstance(control.get("join"), str) and control["join"] != self.join:
            # Each credential brings a fresh viewer-join token: the links shown from now on carry it.
            self.join = control["join"]
            self._publish()
        if self._rotating is not None:
            self._announce()
        lifetime = control.get("expires_in")
        if isinstance(lifetime, int | float) and lifetime > 0:
            if self._renewal is not None:
                self._renewal.cancel()
            self._renewal = asyncio.get_running_loop().call_later(lifetime / 2, self._renew)
        self._credentials.set()

    def _renew(self) -> None:
        """Ask the relay for a fresh routing token before this one lapses (docs/protocol.md)."""
        if self._ws is not None and not self._closing:
            task = asyncio.ensure_future(self._ws.send(json.dumps({"type": "renew"})))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _frame(self, data: bytes) -> None:
        phase = self.pairing.phase
        try:
            if phase is pair.Phase.HANDSHAKE:
                self._pair(pair.Offered(KeyOffer.parse(handshake_payload(data))))
                return
            if phase not in (pair.Phase.PROVING, pair.Phase.CONFIRMING, pair.Phase.ADMITTED):
                raise RemoteProtocolError(f"a frame while the viewer is {phase.value}")
            message = self.secure.open(data)  # opened even while unconfirmed, so the sequence stays in step
            if message is None:
                return
            if phase is pair.Phase.CONFIRMING:
                raise RemoteProtocolError("a message from a device not confirmed at the terminal (dropped)")
            if phase is pair.Phase.PROVING:
                if not isinstance(message, Hello):
                    raise RemoteProtocolError("the first sealed message must be hello")
                self._hello = message
                self._pair(pair.Proved(DeviceClaim.parse(message.device)))
                return
            self.session.handle(FromScreen(VIEWER, message, time.time()))
        except RemoteProtocolError as exc:
            self.drops += 1
            log.warning("dropped a frame from the viewer: %s", exc)
        except Exception:  # never stop serving because of one input (docs/protocol.md section 2)
            self.drops += 1
            log.exception("a frame from the viewer could not be handled")

    # -- admission (host/pairing.py) ------------------------------------------------------

    def _pair(self, event: pair.Event) -> None:
        for effect in self.pairing.handle(event, time.monotonic()):
            self._admission(effect)

    def _admission(self, effect: pair.Effect) -> None:
        if isinstance(effect, pair.Reply):
            self._push(self.secure.accept(effect.handshake, effect.offer), sealed=False)
            assert self.secure.keys is not None
            self.pairing.keys_made(self.secure.keys)
        elif isinstance(effect, pair.RefuseOffer):
            self._push(refusal(effect.reason), sealed=False)
            self._push(DROP_VIEWER, sealed=False)  # after its reason: a refused device holds no seat
        elif isinstance(effect, pair.Ask):
            device, old = effect.device, effect.replacing
            self._asked = (device.id, effect.code)
            self._post_request(device, effect.code)
            what = f"take over from {_shown(old.name)} ({old.id}) for" if old is not None else "pair"
            self.questions.ask(f"{what} {_shown(device.name)} ({device.id}), code {effect.code}? [y/N]",
                               lambda yes: self._pair(pair.Answered(yes)))  # fmt: skip
        elif isinstance(effect, pair.Withdraw):
            self._settle_question("The device left before an answer; the question is withdrawn.")
        elif isinstance(effect, pair.Admit):
            self._settle_question("")
            self._admit(effect.device, effect.new)
        elif isinstance(effect, pair.Refuse):
            self._settle_question("")
            if self.viewer_ready:
                self.session.handle(DeviceGone(VIEWER))
            self.viewer_ready = False
            self._outbox.clear()
            self._outbox_bytes = 0
            if self.secure.keys is not None:
                self._push(Ended(reason=effect.reason).serialize())
            self._push(DROP_VIEWER, sealed=False)  # after its reason: a refused device holds no seat
            self.questions.say(f"A device was not admitted: {effect.reason}.")
        elif isinstance(effect, pair.Rotate):
            self._rotate(effect.why)
        elif isinstance(effect, pair.Say):
            self.questions.say(effect.text)

    def _admit(self, device: DeviceClaim, new: bool) -> None:
        try:
            self.devices.remember(device)
            self._devices_stamp = self.devices.stamp()
        except OSError as exc:  # the device is admitted for this session all the same
            log.warning("could not remember the paired device: %s", exc)
        self.questions.say(f"{_shown(device.name)} ({device.id}) {'paired and ' if new else ''}connected.")
        self.viewer_ready = True
        self.session.handle(DeviceAdmitted(VIEWER, self.session_id, device.id, device.name, device.public_key))
        self.session.handle(FromScreen(VIEWER, self._hello, time.time()))
        self._live_stamp = None  # the new device is told of the other live sessions at the next watch

    def _post_request(self, device: DeviceClaim, code: str) -> None:
        try:
            self.requests.post(self.session_id, device, code)
        except OSError as exc:  # the terminal can still answer
            log.warning("could not leave the pairing question for `tether devices accept`: %s", exc)

    def _settle_question(self, why: str) -> None:
        """The pairing question is moot: answered, refused, or its device left."""
        if self._asked is not None:
            self._asked = None
            self.questions.withdraw(why)
            with contextlib.suppress(OSError):
                self.requests.clear(self.session_id)

    async def _watch(self) -> None:
        """Once a second: the pairing secret's age, `tether devices accept` answers, revoked devices, the outage."""
        last = outage_clock()
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = outage_clock()
            if self.outage.phase is ls.Phase.AWAY:
                # Much more than a second since the last look: the machine slept (or was stopped); dial now.
                self._outage(ls.NetworkBack(now) if now - last > 3 * WATCH_INTERVAL else ls.Tick(now))
            last = now
            self._pair(pair.Tick())
            if self._asked is not None:
                answer = self.requests.take_answer(self.session_id, *self._asked)
                if answer is not None:
                    self.questions.say(f"Answered from another shell: {'pair' if answer else 'refuse'}.")
                    self._pair(pair.Answered(answer))
            self._tell_live()
            stamp = self.devices.stamp()
            if stamp != self._devices_stamp:
                self._devices_stamp = stamp
                device = self.pairing.device
                if device is not None and self.devices.key(device.id) is None:
                    self._pair(pair.Revoked(device.id))

    def _rotate(self, why: str) -> None:
        """A new pairing secret: show the new URL once the relay sent a fresh join token (at once if offline)."""
        if self._rotating is not None:
            self._rotating[1].cancel()
        if self._ws is None or self.outage.phase is not ls.Phase.LIVE or self._closing:
            self._rotating = None
            self._publish()
            self.questions.new_url(self.url, why)
            return
        self._rotating = (why, asyncio.get_running_loop().call_later(ROTATE_WAIT, self._announce))
        self._renew()

    def _announce(self) -> None:
        """Show the URL of the rotation under way (with the freshest join token the link has)."""
        if self._rotating is None:
            return
        why, fallback = self._rotating
        self._rotating = None
        fallback.cancel()
        self._publish()
        self.questions.new_url(self.url, why)

    def _publish(self) -> None:
        """Record this session's current URL among the user's live sessions (host/live.py)."""
        if self.join is None or self._closing:
            return
        try:
            self.live.publish(self.session_id, self.url, self.session.core.info)
        except OSError as exc:  # the session works all the same; other devices just do not list it
            log.warning("could not record the live session: %s", exc)

    def _tell_live(self) -> None:
        """Send an admitted, confirmed device the other live sessions when they change."""
        if not (self.viewer_ready and self._share_live):
            return
        stamp = self.live.stamp()
        if stamp != self._live_stamp:
            self._live_stamp = stamp
            self.deliver(Sessions(sessions=self.live.others(self.session_id)))

    async def close(self) -> None:
        """Flush what is queued (the ``ended`` message), then close the connection."""
        self._closing = True
        if self._netwatch is not None:
            self._netwatch.close()
        self.live.withdraw(self.session_id)
        if self._renewal is not None:
            self._renewal.cancel()
        if self._ws is None:  # away (or never connected): nothing to flush
            for task in list(self._tasks):
                task.cancel()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), FLUSH_TIMEOUT)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(code=1000, reason="session ended"), FLUSH_TIMEOUT)

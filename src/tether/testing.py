"""Public test helpers: a scripted viewer that speaks the real protocol over a socket.

ViewerClient is what the web viewer does, in Python: it connects to the relay's viewer
endpoint, runs the end-to-end handshake with the secret from the URL's fragment, says
``hello`` with its device key's proof, folds ``snapshot`` / ``replay`` / ``entry`` / ``append``
into a local copy of the transcript (``Mirror``), and sends prompts, signed decisions and cancel.
Tests (and scripts) use it to drive a real host through a real relay.

Coming back as the page does (``ViewerClient(url, **old.rejoin())``): the same device with
its resume secret, the transcript it has (``hello.since``: the host replays only what came
after), and what it is not sure arrived: each prompt the host does not list as received is
sent again with its id, each decision whose approval still waits is signed and sent again,
once per connection. The host applies each once.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection

from tether.errors import RemoteProtocolError
from tether.protocol.crypto import KEY_SIZE, ViewerHandshake, resume_id, unb64url
from tether.protocol.messages import (
    Append,
    Cancel,
    Decide,
    Ended,
    Entry,
    Hello,
    Message,
    Output,
    Prompt,
    Refused,
    Replay,
    Sessions,
    Snapshot,
    Turn,
)
from tether.protocol.secure import SecureChannel
from tether.protocol.signing import DeviceKey

JSON = dict[str, Any]


def initiation_token(admission: Any, device: str = "test-device") -> str:
    """A session-initiation token minted with a relay's own keys (``EmbeddedRelay.admission``),
    standing in for the login and possession proof a real host goes through."""
    from tether.auth.tokens import Purpose, mint

    token, _ = mint(admission.keys, Purpose.INITIATE, device, time.time(), os.urandom)
    return token


def option_id(approval: JSON, kind: str) -> str:
    """The agent's own option id in an approval entry for an ACP option kind (``allow_once``, ...)."""
    return str(next(o["option_id"] for o in approval["options"] if o["kind"] == kind))


def viewer_socket_url(session_url: str) -> str:
    """``http://relay/s/ID#...`` -> ``ws://relay/v1/viewer/ID``."""
    parts = urlsplit(session_url)
    prefix, _, session_id = parts.path.rpartition("/s/")
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, f"{prefix}/v1/viewer/{session_id}", "", ""))


@dataclass
class Mirror:
    """A screen's copy of the host's transcript, folded from the messages the host sends; pure.

    ``at`` and ``run`` are the newest transcript message applied (its ``n``) and the host run
    it belongs to: what a viewer that comes back says in its ``hello``. A numbered message at
    or below ``at`` is a duplicate and is ignored.
    """

    entries: dict[str, JSON] = field(default_factory=dict)
    session: JSON = field(default_factory=dict)
    running: bool = False
    stop_reasons: list[str | None] = field(default_factory=list)
    at: int | None = None
    run: str | None = None
    received: list[str] = field(default_factory=list)  # prompt ids the host listed as received
    snapshots: int = 0  # whole transcripts received
    replays: list[int] = field(default_factory=list)  # the number of messages of each replay
    duplicates: int = 0  # numbered messages ignored as already applied
    remaining: dict[str, float] = field(default_factory=dict)  # approval id -> seconds left, as of the last join

    def apply(self, message: Message) -> None:
        """Fold one message from the host in."""
        match message:
            case Snapshot(session=session, entries=entries, running=running):
                self.snapshots += 1
                self.session, self.running = session, running
                self.entries = {e["id"]: e for e in entries}
                self.at, self.run, self.received = message.at, message.run, list(message.received or [])
                self.remaining = dict(message.remaining or {})
                return
            case Replay(session=session, running=running):
                self.session = session
                self.replays.append(len(message.messages))
                for replayed in message.parsed():
                    self.apply(replayed)
                self.running, self.at, self.received = running, message.at, list(message.received)
                self.remaining = dict(message.remaining or {})
                return
        n = getattr(message, "n", None)
        if n is not None and self.at is not None:
            if n <= self.at:
                self.duplicates += 1
                return
            self.at = n
        match message:
            case Entry(entry=entry):
                self.entries[entry["id"]] = copy.deepcopy(entry)
            case Append(id=entry_id, text=text) if entry_id in self.entries:
                self.entries[entry_id]["text"] += text
            case Output(id=entry_id, terminal_id=terminal_id, text=text) if entry_id in self.entries:
                for item in self.entries[entry_id]["content"]:
                    if item.get("terminal_id") == terminal_id:
                        item["output"] = (item["output"] + text)[-64 * 1024 :]
            case Turn(running=running, stop_reason=stop_reason):
                self.running = running
                if not running:
                    self.stop_reasons.append(stop_reason)


class ViewerClient:
    """A scripted viewer (see module doc). Use ``async with ViewerClient(url) as viewer``."""

    def __init__(
        self,
        session_url: str,
        join: str | None = None,
        tls: ssl.SSLContext | None = None,
        device: DeviceKey | None = None,
        resume: tuple[str, bytes] | None = None,
        wait_admitted: bool = True,
        mirror: Mirror | None = None,
        unconfirmed: dict[str, Prompt] | None = None,
        decided: dict[str, str] | None = None,
        takeover: bool = False,
    ) -> None:
        # ``takeover``: ask the relay to replace the viewer in place, as the page's take-over button does.
        self.url = viewer_socket_url(session_url) + ("?takeover=1" if takeover else "")
        self.session_id = urlsplit(session_url).path.rpartition("/s/")[2]
        self.tls = tls  # for a wss:// relay with a private CA
        # The fragment, as the web page reads it: the viewer-join credential (j) and the pairing secret (k).
        fragment = parse_qs(urlsplit(session_url).fragment)
        self.join = join if join is not None else (fragment.get("j") or [""])[0]
        self.secret = unb64url((fragment.get("k") or [""])[0], KEY_SIZE, "the pairing secret", ValueError) if (
            fragment.get("k")) else bytes(KEY_SIZE)  # fmt: skip
        self.device = device or DeviceKey("tether-testing")
        self.resume = resume  # (resume_id, resume secret) of an earlier admitted connection
        self.wait_admitted = wait_admitted  # enter only once the host admitted this device (its snapshot came)
        self.admitted = False
        self.secure = SecureChannel()
        self.pairing_code: str | None = None
        self.refused: str | None = None  # why the host refused the handshake, if it did
        self.credentials: list[JSON] = []
        # The transcript so far; one carried over from an earlier connection is resumed (hello.since).
        self.mirror = mirror if mirror is not None else Mirror()
        self.coming_back = mirror is not None and mirror.at is not None
        self.unconfirmed: dict[str, Prompt] = dict(unconfirmed or {})  # prompt id -> prompt not listed received
        self.decided: dict[str, str] = dict(decided or {})  # approval id -> option chosen here, while it waits
        self.resent: list[str] = []  # prompt ids and approval ids sent again on this connection
        self._joined = False  # this connection got its snapshot or replay
        self.on_change: Callable[[], None] | None = None  # called after each message and at the close
        self.ended: str | None = None
        self.sessions: list[JSON] | None = None  # the other live sessions the host told of (host/live.py)
        self.close_code: int | None = None
        self.controls: list[JSON] = []
        self.refusals: list[Refused] = []  # decisions the host refused (the page re-enables their card)
        self._shown: dict[str, float] = {}  # approval id -> when this client first had it (monotonic)
        self._changed = asyncio.Condition()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending_sends: list[bytes] = []

    async def __aenter__(self) -> ViewerClient:
        self._ws = await websockets.connect(self.url, compression=None, max_size=2 * 1024 * 1024, ssl=self.tls)
        await self._ws.send(json.dumps({"type": "join", "token": self.join}))
        self._handshake = ViewerHandshake(self.session_id, self.resume[1] if self.resume else self.secret, os.urandom)
        await self._ws.send(self.secure.offer_frame(self._handshake, self.resume[0] if self.resume else None))
        self._reader = asyncio.create_task(self._read())
        if self.wait_admitted:
            await self.wait_for(lambda v: v.admitted or v.refused)
        return self

    @property
    def entries(self) -> dict[str, JSON]:
        return self.mirror.entries

    @property
    def session(self) -> JSON:
        return self.mirror.session

    @property
    def running(self) -> bool:
        return self.mirror.running

    @property
    def stop_reasons(self) -> list[str | None]:
        return self.mirror.stop_reasons

    def rejoin(self) -> JSON:
        """Keyword arguments for a ViewerClient that comes back as this one: same device, its resume secret,
        its transcript, and the prompts and decisions it is not sure the host got (see module doc)."""
        keys = self.secure.keys
        assert keys is not None, "only a viewer that made keys can come back"
        resume = (resume_id(keys.resume_secret), keys.resume_secret)
        mirror = copy.deepcopy(self.mirror)  # the transcript as of now
        return {"device": self.device, "resume": resume, "mirror": mirror, "unconfirmed": self.unconfirmed,
                "decided": self.decided}  # fmt: skip

    def _keys(self, data: bytes) -> None:
        """The host's first frame: make the keys, then say hello with this device's proof."""
        try:
            keys = self.secure.take_reply(self._handshake, data)
        except RemoteProtocolError as exc:
            self.refused = str(exc)
            return
        self.pairing_code = keys.pairing_code
        since = self.mirror.at if self.coming_back else None
        hello = Hello(client="tether-testing", device=self.device.claim(keys.transcript), since=since,
                      run=self.mirror.run if since is not None else None)  # fmt: skip
        assert self._ws is not None
        for frame in self.secure.send(hello):
            self._pending_sends.append(frame)

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()

    async def send(self, message: Message) -> None:
        assert self._ws is not None
        for frame in self.secure.send(message):
            await self._ws.send(frame)

    async def renew(self) -> None:
        """Ask the relay for a fresh routing credential (in-band)."""
        assert self._ws is not None
        await self._ws.send(json.dumps({"type": "renew"}))

    async def send_payload(self, payload: bytes) -> None:
        """Frames of a raw payload, well sequenced: for sending what no Message would serialize to."""
        assert self._ws is not None
        for frame in self.secure.seal(payload):
            await self._ws.send(frame)

    async def prompt(self, text: str, prompt_id: str | None = None) -> str:
        """Send a prompt with an id (a new one unless given); it stays unconfirmed until the host lists it."""
        prompt = Prompt(text=text, id=prompt_id or uuid.uuid4().hex)
        assert prompt.id is not None
        self.unconfirmed[prompt.id] = prompt
        await self.send(prompt)
        return prompt.id

    async def decide(self, approval_id: str, option_id: str) -> None:
        """Decide as the web page does: signed by this device over what it was shown."""
        self.decided[approval_id] = option_id
        approval = self.entries[approval_id]
        await self._cool_down(approval, option_id)
        tool_call = self.entries.get(approval.get("tool_call_id") or "")
        expires = int(time.time() * 1000) + 60_000
        signature = self.device.sign(self.session_id, approval, tool_call, option_id, expires)
        await self.send(Decide(approval_id=approval_id, option_id=option_id, signature=signature, expires=expires))

    async def cancel(self) -> None:
        await self.send(Cancel())

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for data in self._ws:
                if isinstance(data, str):
                    control = json.loads(data)
                    if control.get("type") == "credentials":
                        self.credentials.append(control)
                    else:
                        self.controls.append(control)
                elif self.secure.keys is None:
                    self._keys(data)
                    while self._pending_sends:
                        await self._ws.send(self._pending_sends.pop(0))
                else:
                    with contextlib.suppress(RemoteProtocolError):  # dropped, as the page drops it
                        message = self.secure.open(data)
                        if message is not None:
                            self._apply(message)
                    if not self.admitted and self._joined:
                        await self._admitted()
                async with self._changed:
                    self._changed.notify_all()
                if self.on_change is not None:
                    self.on_change()
        except websockets.ConnectionClosed:
            pass
        self.close_code = self._ws.close_code
        async with self._changed:
            self._changed.notify_all()
        if self.on_change is not None:
            self.on_change()

    async def _admitted(self) -> None:
        """The host's snapshot or replay came: send once what it may not have (see module doc)."""
        self.admitted = True
        for prompt_id in self.mirror.received:
            self.unconfirmed.pop(prompt_id, None)
        for prompt_id, prompt in list(self.unconfirmed.items()):
            self.resent.append(prompt_id)
            await self.send(prompt)
        for approval_id, option_id in list(self.decided.items()):
            if self.entries.get(approval_id, {}).get("state") == "pending":
                self.resent.append(approval_id)
                await self.decide(approval_id, option_id)
            else:
                del self.decided[approval_id]

    async def _cool_down(self, approval: JSON, option_id: str) -> None:
        """Approving a risky request waits out its cooldown from when it was first seen, as the page's button does."""
        option: JSON = next((o for o in approval.get("options", []) if o.get("option_id") == option_id), {})
        cooldown = approval.get("cooldown")
        if approval.get("tier") != "risky" or not isinstance(cooldown, int | float) or option.get("kind") not in (
                "allow_once", "allow_always"):  # fmt: skip
            return
        seen = self._shown.setdefault(approval["id"], time.monotonic())
        await asyncio.sleep(max(0.0, seen + cooldown - time.monotonic()))  # the host refuses a faster approval

    def _apply(self, message: Message) -> None:
        if not self._joined and getattr(message, "n", None) is not None:
            return  # before this connection's snapshot or replay: that snapshot or replay has it already
        self.mirror.apply(message)
        for entry in self.of_type("approval"):
            self._shown.setdefault(entry["id"], time.monotonic())
        self._joined = self._joined or isinstance(message, Snapshot | Replay)
        match message:
            case Ended(reason=reason):
                self.ended = reason
            case Sessions(sessions=sessions):
                self.sessions = sessions
            case Refused(approval_id=approval_id):
                self.refusals.append(message)
                self.decided.pop(approval_id, None)  # not decided: it may be answered again

    @property
    def closed(self) -> bool:
        return self._reader is not None and self._reader.done()

    def of_type(self, kind: str) -> list[JSON]:
        """Entries of one type, in order."""
        return [e for e in self.entries.values() if e["type"] == kind]

    def texts(self, role: str) -> list[str]:
        """Texts of the message entries with ``role``."""
        return [e["text"] for e in self.of_type("message") if e["role"] == role]

    def pending_approval(self) -> JSON | None:
        """The oldest pending approval entry, if any."""
        return next((e for e in self.of_type("approval") if e["state"] == "pending"), None)

    async def wait_for(self, predicate: Callable[[ViewerClient], Any], timeout: float = 10.0) -> Any:  # noqa: ASYNC109
        """Wait until ``predicate(self)`` is truthy and return its value."""
        async with asyncio.timeout(timeout), self._changed:
            while not (result := predicate(self)):
                if self.closed:
                    with contextlib.suppress(Exception):
                        if result := predicate(self):
                            return result
                    raise AssertionError(f"viewer closed ({self.close_code}) before the condition held")
                await self._changed.wait()
            return result

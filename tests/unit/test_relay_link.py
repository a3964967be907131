"""The relay link: bounded towards a slow viewer, sealed end to end, and no viewer input stops it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tether.host.core.events import DeviceAdmitted, FromScreen, ViewerBehind
from tether.host.paired import PairedDevices
from tether.host.relay_link import DROP_VIEWER, OUTBOX_BYTES, RelayLink
from tether.protocol.crypto import ViewerHandshake, resume_id
from tether.protocol.frames import Frame
from tether.protocol.messages import Entry, Hello, Prompt
from tether.protocol.secure import SecureChannel
from tether.protocol.signing import DeviceKey


class Door:
    """Stands in for HostSession: records the events the link hands in (``handle``); ``core.info`` names it."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.core = SimpleNamespace(info={"title": "project", "agent": "scripted", "cwd": "/work/project"})

    def handle(self, event: Any) -> None:
        self.events.append(event)


class Viewer:
    """The page's end of one connection, in Python: handshake, device proof, sealed frames."""

    def __init__(self, link: RelayLink, device: DeviceKey | None = None) -> None:
        self.link = link
        self.device = device or DeviceKey("phone")
        self.secure = SecureChannel()
        link._control(json.dumps({"type": "peer", "role": "viewer", "state": "joined"}))
        self.handshake = ViewerHandshake(link.session_id, link.pairing.secret, os.urandom)
        link._frame(self.secure.offer_frame(self.handshake))
        payload, sealed = link._outbox.popleft()
        assert not sealed
        self.secure.take_reply(self.handshake, payload)

    def send(self, message: Any) -> None:
        for frame in self.secure.send(message):
            self.link._frame(frame)

    def hello(self) -> None:
        assert self.secure.keys is not None
        self.send(Hello(client="t", device=self.device.claim(self.secure.keys.transcript)))


def link_in(folder: Path, accept: bool = True) -> tuple[Door, RelayLink]:
    door = Door()
    link = RelayLink(door, "http://127.0.0.1:1", devices=PairedDevices(folder), accept_device=accept)  # type: ignore[arg-type]
    link.join = "join-token"
    return door, link


async def test_a_viewer_that_does_not_read_costs_bounded_memory(tmp_path: Path) -> None:
    """Past OUTBOX_BYTES what waits is dropped and the viewer is marked behind (it gets a snapshot)."""
    door, link = link_in(tmp_path)
    Viewer(link).hello()
    door.events.clear()
    big = Entry(entry={"id": "m1", "type": "message", "role": "agent", "text": "x" * 100_000})
    for _ in range(500):  # 50 MB offered
        link.deliver(big)
        assert link._outbox_bytes <= OUTBOX_BYTES
    assert link.resyncs >= 5 and all(isinstance(e, ViewerBehind) for e in door.events)


async def test_viewer_frames_become_events_and_bad_ones_are_dropped(tmp_path: Path) -> None:
    """Good frames become FromScreen events; a malformed one is counted, and the next still arrives."""
    door, link = link_in(tmp_path)
    viewer = Viewer(link)
    viewer.hello()
    assert isinstance(door.events[0], DeviceAdmitted) and viewer.device.id == door.events[0].device_id
    for frame in viewer.secure.seal(b"[" * 200_000):
        link._frame(frame)
    viewer.send(Prompt(text="hi"))
    screens = [e for e in door.events if isinstance(e, FromScreen)]
    assert [Hello, Prompt] == [type(e.message) for e in screens] and "hi" == screens[1].message.text
    assert 1 == link.drops and link.viewer_ready


async def test_tampered_replayed_reordered_and_reflected_frames_are_dropped_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    door, link = link_in(tmp_path)
    viewer = Viewer(link)
    viewer.hello()
    first = viewer.secure.send(Prompt(text="one"))[0]
    second = viewer.secure.send(Prompt(text="two"))[0]
    tampered = bytearray(first)
    tampered[-1] ^= 1
    link._frame(bytes(tampered))  # a flipped bit
    link._frame(second)  # out of order
    link._frame(first)
    link._frame(first)  # replayed
    assert link.secure.keys is not None
    reflected = link.secure.keys.sealer.seal_frame(Frame(seq=2, payload=b'{"kind":"cancel"}').serialize())
    link._frame(reflected)  # the host's own direction sent back to it
    link._frame(second)
    prompts = [e.message.text for e in door.events if isinstance(e, FromScreen) and isinstance(e.message, Prompt)]
    assert ["one", "two"] == prompts
    assert 4 == link.drops


async def test_a_device_not_confirmed_at_the_terminal_receives_nothing(tmp_path: Path) -> None:
    door, link = link_in(tmp_path, accept=False)
    asked: list[tuple[str, Any]] = []
    link.questions.ask = lambda question, answer: asked.append((question, answer))  # type: ignore[method-assign]
    viewer = Viewer(link)
    viewer.hello()
    assert viewer.secure.keys is not None
    (question, answer), = asked
    assert f"code {viewer.secure.keys.pairing_code}? [y/N]" in question and viewer.device.id in question
    link.deliver(Entry(entry={"id": "m1", "type": "message", "role": "agent", "text": "secret plans"}))
    viewer.send(Prompt(text="rm -rf"))
    assert [] == list(link._outbox) and [] == door.events and not link.viewer_ready
    answer(True)
    assert link.viewer_ready and isinstance(door.events[0], DeviceAdmitted)
    assert viewer.device.id in PairedDevices(tmp_path).read()


async def test_a_refused_device_is_told_and_the_url_changes(tmp_path: Path) -> None:
    door, link = link_in(tmp_path, accept=False)
    asked: list[Any] = []
    link.questions.ask = lambda question, answer: asked.append(answer)  # type: ignore[method-assign]
    before = link.url
    viewer = Viewer(link)
    viewer.hello()
    asked[0](False)
    assert [] == door.events and before != link.url
    (payload, sealed), drop = link._outbox  # its reason, then the relay is asked to drop it (it holds no seat)
    assert (DROP_VIEWER, False) == drop
    ended = viewer.secure.open(link.secure.seal(payload)[0]) if sealed else None
    assert ended is not None and "refused" in ended.to_json()["reason"]


async def test_the_url_replayed_after_pairing_admits_no_one(tmp_path: Path) -> None:
    _door, link = link_in(tmp_path)
    Viewer(link).hello()
    link._control(json.dumps({"type": "peer", "role": "viewer", "state": "left"}))
    # Someone else with the same URL (the secret now spent): the host refuses to run a handshake.
    late = SecureChannel()
    link._control(json.dumps({"type": "peer", "role": "viewer", "state": "joined"}))
    link._frame(late.offer_frame(ViewerHandshake(link.session_id, link.pairing.secret, os.urandom)))
    (payload, sealed), drop = link._outbox
    assert not sealed and b"key_refused" in payload and (DROP_VIEWER, False) == drop


def come_back(link: RelayLink, device: DeviceKey, secret: bytes) -> None:
    """A new connection that names the resume secret of an earlier one and proves ``device``'s key."""
    link._control(json.dumps({"type": "peer", "role": "viewer", "state": "left"}))
    link._control(json.dumps({"type": "peer", "role": "viewer", "state": "joined"}))
    secure = SecureChannel()
    handshake = ViewerHandshake(link.session_id, secret, os.urandom)
    link._frame(secure.offer_frame(handshake, resume_id(secret)))
    payload, _ = link._outbox.popleft()
    keys = secure.take_reply(handshake, payload)
    for frame in secure.send(Hello(client="t", device=device.claim(keys.transcript))):
        link._frame(frame)


async def test_a_device_comes_back_with_its_resume_secret_without_being_asked_again(tmp_path: Path) -> None:
    door, link = link_in(tmp_path, accept=False)
    asked: list[Any] = []
    link.questions.ask = lambda question, answer: (asked.append(question), answer(True))  # type: ignore[method-assign]
    first = Viewer(link)
    first.hello()
    assert first.secure.keys is not None and 1 == len(asked)
    door.events.clear()
    come_back(link, first.device, first.secure.keys.resume_secret)
    assert 1 == len(asked) and isinstance(door.events[-1], FromScreen) and link.viewer_ready


async def test_a_resume_secret_does_not_admit_another_device(tmp_path: Path) -> None:
    door, link = link_in(tmp_path, accept=False)
    link.questions.ask = lambda question, answer: answer(True)  # type: ignore[method-assign]
    first = Viewer(link)
    first.hello()
    assert first.secure.keys is not None
    door.events.clear()
    come_back(link, DeviceKey("thief"), first.secure.keys.resume_secret)
    assert not link.viewer_ready and not [e for e in door.events if isinstance(e, DeviceAdmitted)]

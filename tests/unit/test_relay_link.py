"""The relay link: bounded towards a slow viewer, and no viewer input stops it."""

from __future__ import annotations

from typing import Any

from tether.host.core.events import FromScreen, ViewerBehind
from tether.host.relay_link import OUTBOX_BYTES, RelayLink
from tether.protocol.channel import Channel
from tether.protocol.messages import Entry, Hello, Prompt


class Door:
    """Stands in for HostSession.handle: records the events the link hands in."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def handle(self, event: Any) -> None:
        self.events.append(event)


async def test_a_viewer_that_does_not_read_costs_bounded_memory() -> None:
    """Past OUTBOX_BYTES what waits is dropped and the viewer is marked behind (it gets a snapshot)."""
    door = Door()
    link = RelayLink(door, "http://127.0.0.1:1")  # type: ignore[arg-type]
    link.viewer_ready = True
    big = Entry(entry={"id": "m1", "type": "message", "role": "agent", "text": "x" * 100_000})
    for _ in range(500):  # 50 MB offered
        link.deliver(big)
        assert link._outbox_bytes <= OUTBOX_BYTES
    assert link.resyncs >= 5 and all(isinstance(e, ViewerBehind) for e in door.events)


async def test_viewer_frames_become_events_and_bad_ones_are_dropped() -> None:
    """Good frames become FromScreen events; a malformed one is counted, and the next still arrives."""
    door = Door()
    link = RelayLink(door, "http://127.0.0.1:1")  # type: ignore[arg-type]
    viewer = Channel()
    for frame in viewer.send(Hello(client="t")):
        link._frame(frame)
    for frame in viewer.send_payload(b"[" * 200_000):
        link._frame(frame)
    for frame in viewer.send(Prompt(text="hi")):
        link._frame(frame)
    assert [FromScreen("viewer", Hello(client="t")), FromScreen("viewer", Prompt(text="hi"))] == door.events
    assert 1 == link.drops and link.viewer_ready

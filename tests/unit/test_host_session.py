"""The asyncio shell: it pumps, and no task it runs fails unseen."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tether.host.agent_process import resolve
from tether.host.session import HostSession
from tether.protocol.messages import Entry, Message


class Screen:
    name = "terminal"

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.changed = asyncio.Event()

    def deliver(self, message: Message) -> None:
        self.messages.append(message)
        self.changed.set()


async def test_a_failing_task_is_shown_on_every_screen(tmp_path: Path) -> None:
    """A task that raises is logged and surfaced as a system message, never lost silently."""
    session = HostSession(tmp_path, resolve("demo"), tmp_path / "agent.log")
    screen = Screen()
    session.sinks.append(screen)

    async def broken() -> None:
        raise RuntimeError("boom")

    session.spawn(broken(), "the test task")
    async with asyncio.timeout(5):
        await screen.changed.wait()
    (message,) = screen.messages
    assert isinstance(message, Entry) and "Internal error in the test task" in message.entry["text"]


async def test_events_raised_inside_an_effect_wait_their_turn(tmp_path: Path) -> None:
    """A screen that hands an event in while taking a message does not re-enter the core."""
    session = HostSession(tmp_path, resolve("demo"), tmp_path / "agent.log")
    from tether.host.core.events import Notice

    class Echo(Screen):
        def deliver(self, message: Message) -> None:
            super().deliver(message)
            if len(self.messages) == 1:
                session.handle(Notice("second"))

    screen = Echo()
    session.sinks.append(screen)
    session.handle(Notice("first"))
    texts = [m.entry["text"] for m in screen.messages if isinstance(m, Entry)]
    assert ["first", "second"] == texts

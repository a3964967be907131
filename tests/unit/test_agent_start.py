"""Starting an agent says what is happening, with progress, instead of a blank terminal."""

from __future__ import annotations

import asyncio

from tether.host.agent_connection import starting_line, with_progress
from tether.host.agent_process import resolve


def test_the_starting_line_names_the_agent_and_npx() -> None:
    """Claude Code through npx: its name and that npx may download it; a bare command: its name."""
    assert "Starting Claude Code; npx may download it on first use…" == starting_line(resolve("claude"))
    assert "Starting my-agent…" == starting_line(resolve("my-agent --acp"))


async def test_progress_lines_come_until_the_start_is_done() -> None:
    """While the start takes long, "still starting" lines follow; the result is the start's."""
    said: list[str] = []
    done = asyncio.Event()

    def say(text: str) -> None:
        said.append(text)
        if len(said) == 3:
            done.set()

    async def start() -> str:
        await done.wait()
        return "opened"

    assert "opened" == await with_progress(start(), say, "Starting X…", every=0.001)
    assert ["Starting X…", "… still starting (0 s)", "… still starting (0 s)"] == said

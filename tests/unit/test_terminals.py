"""Commands the agent runs: output limits, exit status, kill."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tether.host.terminals import Terminal, Terminals

UNIT = 5.0  # seconds; the one timeout unit of these tests


async def test_output_and_exit_code(tmp_path: Path) -> None:
    """A shell command line runs in the given folder; output and code are kept."""
    terminals = Terminals(tmp_path)
    terminal = await terminals.create("pwd; exit 3", None, dict(os.environ), tmp_path, None)
    done = await asyncio.wait_for(terminals.wait(terminal.id), UNIT)
    assert (f"{tmp_path}\n", 3) == (done.text(), done.exit_code)


async def test_output_limit_keeps_the_tail_on_a_character_boundary(tmp_path: Path) -> None:
    """Past the byte limit only the end is kept, never half a character."""
    terminals = Terminals(tmp_path)
    terminal = await terminals.create("printf", ["ééééé"], dict(os.environ), tmp_path, 5)
    done = await asyncio.wait_for(terminals.wait(terminal.id), UNIT)
    assert ("éé", True) == (done.text(), done.truncated)


async def test_kill_stops_the_process_group(tmp_path: Path) -> None:
    """Kill ends the command and its children; the signal is reported."""
    changes: list[Terminal] = []
    terminals = Terminals(tmp_path, changes.append)
    terminal = await terminals.create("sleep 30 & sleep 30; wait", None, dict(os.environ), tmp_path, None)
    terminals.kill(terminal.id)
    done = await asyncio.wait_for(terminals.wait(terminal.id), UNIT)
    assert ("SIGKILL", None) == (done.signal, done.exit_code)
    assert changes and changes[-1] is terminal

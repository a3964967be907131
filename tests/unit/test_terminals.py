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


async def test_a_real_time_signal_still_ends_the_terminal(tmp_path: Path) -> None:
    """A signal Python has no name for (real-time 40) is reported by number and the command ends."""
    terminals = Terminals(tmp_path)
    terminal = await terminals.create("kill -40 $$", None, dict(os.environ), tmp_path, None)
    done = await asyncio.wait_for(terminals.wait(terminal.id), UNIT)
    assert ("SIG40", None) == (done.signal, done.exit_code)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited: no such process, or a zombie waiting for its reaper."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    if not Path("/proc/self/stat").exists():
        return False  # no /proc (macOS): a zombie counts as running until it is reaped
    try:
        # The state follows the command name in parentheses: "1234 (sleep) Z ...".
        return "Z" == Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True


async def test_kill_stops_the_commands_children(tmp_path: Path) -> None:
    """Kill reaches a background child of the command, not only the shell (the process group)."""
    started = asyncio.Event()
    terminals = Terminals(tmp_path, lambda t: started.set() if "\n" in t.text() else None)
    terminal = await terminals.create("sleep 1000 & echo $!; wait", None, dict(os.environ), tmp_path, None)
    await asyncio.wait_for(started.wait(), UNIT)
    child = int(terminal.text().split()[0])
    assert not _gone(child)
    terminals.kill(terminal.id)
    await asyncio.wait_for(terminals.wait(terminal.id), UNIT)

    async def until_gone() -> None:
        # No event tells of the end of a process that is not our child: poll, within UNIT.
        while not _gone(child):  # noqa: ASYNC110
            await asyncio.sleep(UNIT / 100)

    await asyncio.wait_for(until_gone(), UNIT)


async def _finished_terminal(limit: int) -> Terminal:
    """A Terminal around a command that already ended, to feed output by hand."""
    process = await asyncio.create_subprocess_exec("true")
    await process.wait()
    return Terminal(id="term-x", command="true", process=process, limit=limit)


async def test_take_new_returns_only_what_arrived_since_the_last_take() -> None:
    """Each take gives the text appended since the previous one; nothing new gives ''."""
    terminal = await _finished_terminal(100)
    terminal.append(b"one\n")
    first = terminal.take_new()
    terminal.append(b"two\n")
    terminal.append(b"three\n")
    assert ("one\n", "two\nthree\n", "", 0) == (first, terminal.take_new(), terminal.take_new(), terminal.skipped)


async def test_take_new_joins_a_character_split_across_reads() -> None:
    """A multi-byte character cut between two reads comes out whole, not as two replacement marks."""
    terminal = await _finished_terminal(100)
    terminal.append("a€".encode()[:2])
    first = terminal.take_new()
    terminal.append("a€".encode()[2:] + b"b")
    assert ("a", "€b") == (first, terminal.take_new())


async def test_take_new_keeps_the_last_limit_bytes_and_counts_the_rest() -> None:
    """More than ``limit`` new bytes: the take keeps the tail on a character boundary; ``skipped`` counts the rest."""
    terminal = await _finished_terminal(5)
    terminal.append(b"ab")
    terminal.append("éééé".encode())  # 8 bytes: 10 new in all, 5 kept at most
    assert ("éé", 6) == (terminal.take_new(), terminal.skipped)
    terminal.append(b"c")
    assert ("c", 0) == (terminal.take_new(), terminal.skipped)


async def test_take_new_is_independent_of_the_retained_output(tmp_path: Path) -> None:
    """Taking new output does not consume what terminal/output returns, and vice versa."""
    terminals = Terminals(tmp_path)
    terminal = await terminals.create("printf 'x\\ny\\n'", None, dict(os.environ), tmp_path, None)
    done = await asyncio.wait_for(terminals.wait(terminal.id), UNIT)
    assert ("x\ny\n", "x\ny\n", "") == (done.take_new(), done.text(), done.take_new())

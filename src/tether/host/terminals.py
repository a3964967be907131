"""The agent's ``terminal/*`` requests: commands run in the project folder.

ACP (``terminal/create``): the client runs ``command`` with ``args``, keeps the combined
output, and when ``outputByteLimit`` is set keeps only the last that many bytes,
truncating at a character boundary and reporting ``truncated``. Each command runs in its
own process group so that kill and release stop everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_OUTPUT_LIMIT = 1024 * 1024
READ_CHUNK = 64 * 1024


@dataclass
class Terminal:
    """One running or finished command and its retained output."""

    id: str
    command: str
    process: asyncio.subprocess.Process
    limit: int
    output: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    exit_code: int | None = None
    signal: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def append(self, data: bytes) -> None:
        """Keep the last ``limit`` bytes, cut at a UTF-8 character boundary."""
        self.output += data
        excess = len(self.output) - self.limit
        if excess > 0:
            # Skip continuation bytes (0b10xxxxxx) so the kept text starts on a character.
            while excess < len(self.output) and (self.output[excess] & 0xC0) == 0x80:
                excess += 1
            del self.output[:excess]
            self.truncated = True

    def text(self) -> str:
        """The retained output as text."""
        return self.output.decode("utf-8", errors="replace")


class Terminals:
    """Creates, watches and stops the agent's commands (see module doc).

    ``on_change(terminal)`` is called whenever output arrives or the command exits, so
    the transcript can show live output.
    """

    def __init__(self, root: Path, on_change: Callable[[Terminal], None] | None = None) -> None:
        self.root = root
        self.on_change = on_change or (lambda terminal: None)
        self._terminals: dict[str, Terminal] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, terminal_id: str) -> Terminal:
        """The terminal with that id; KeyError if unknown or released."""
        return self._terminals[terminal_id]

    def find(self, terminal_id: str) -> Terminal | None:
        """The terminal with that id, or None."""
        return self._terminals.get(terminal_id)

    async def create(
        self,
        command: str,
        args: list[str] | None,
        env: Mapping[str, str],
        cwd: Path,
        output_byte_limit: int | None,
    ) -> Terminal:
        """Start ``command``; without args it is a shell command line, as agents send it."""
        argv = [command, *args] if args else ["/bin/sh", "-c", command]
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        terminal = Terminal(
            id=f"term-{next(self._ids)}",
            command=" ".join([command, *(args or [])]),
            process=process,
            limit=output_byte_limit if output_byte_limit is not None else DEFAULT_OUTPUT_LIMIT,
        )
        self._terminals[terminal.id] = terminal
        task = asyncio.create_task(self._pump(terminal))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return terminal

    async def _pump(self, terminal: Terminal) -> None:
        assert terminal.process.stdout is not None
        while data := await terminal.process.stdout.read(READ_CHUNK):
            terminal.append(data)
            self.on_change(terminal)
        returncode = await terminal.process.wait()
        if returncode < 0:
            terminal.signal = signal.Signals(-returncode).name
        else:
            terminal.exit_code = returncode
        terminal.done.set()
        self.on_change(terminal)

    async def wait(self, terminal_id: str) -> Terminal:
        """Wait until the command has exited and its output is read."""
        terminal = self.get(terminal_id)
        await terminal.done.wait()
        return terminal

    def kill(self, terminal_id: str) -> None:
        """Stop the command and everything it started; the terminal stays readable."""
        terminal = self.get(terminal_id)
        if terminal.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(terminal.process.pid, signal.SIGKILL)

    def release(self, terminal_id: str) -> None:
        """Kill the command if running and forget the terminal."""
        if terminal_id in self._terminals:
            self.kill(terminal_id)
            del self._terminals[terminal_id]

    def kill_all(self) -> None:
        """Stop every running command (the session is ending)."""
        for terminal_id in list(self._terminals):
            self.kill(terminal_id)

"""The agent's ``terminal/*`` requests: commands run in the project folder.

ACP (``terminal/create``): the client runs ``command`` with ``args``, keeps the combined
output, and when ``outputByteLimit`` is set keeps only the last that many bytes,
truncating at a character boundary and reporting ``truncated``. Each command runs in its
own process group so that kill and release stop everything it started. Any exit ends the
terminal: a signal Python has no name for (a real-time one) is reported as ``SIG<n>``.

Beside that retained output, each terminal keeps what arrived since the last
``take_new()`` for live display (the console, the viewer), bounded the same way: when more
than ``limit`` bytes arrive between two takes only the last ``limit`` bytes are kept, and
``skipped`` then says how many were dropped before the text that take returned.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import itertools
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tether.host.sandbox_run import Sandbox

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
    skipped: int = field(default=0, init=False)
    """Bytes the last ``take_new()`` dropped before the text it returned (module doc)."""
    _new: bytearray = field(default_factory=bytearray, init=False, repr=False)
    _dropped: int = field(default=0, init=False, repr=False)
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"), init=False, repr=False
    )

    def append(self, data: bytes) -> None:
        """Keep the last ``limit`` bytes, cut at a UTF-8 character boundary; the same for new output."""
        self.output += data
        if _keep_tail(self.output, self.limit):
            self.truncated = True
        self._new += data
        self._dropped += _keep_tail(self._new, self.limit)

    def text(self) -> str:
        """The retained output as text."""
        return self.output.decode("utf-8", errors="replace")

    def take_new(self) -> str:
        """The text appended since the previous call ('' if none); sets ``skipped`` (module doc).

        Decoded incrementally, so a character split between two reads comes out whole in
        the take that completes it; once the command has ended a dangling partial
        character comes out as U+FFFD.
        """
        self.skipped = self._dropped
        if self._dropped:
            self._decoder.reset()  # a partial character held from before belongs to the dropped bytes
        data = bytes(self._new)
        self._new.clear()
        self._dropped = 0
        return self._decoder.decode(data, final=self.done.is_set())


def _keep_tail(buffer: bytearray, limit: int) -> int:
    """Cut ``buffer`` to its last ``limit`` bytes, starting on a UTF-8 character; bytes removed."""
    excess = len(buffer) - limit
    if excess <= 0:
        return 0
    # Skip continuation bytes (0b10xxxxxx) so the kept text starts on a character.
    while excess < len(buffer) and (buffer[excess] & 0xC0) == 0x80:
        excess += 1
    del buffer[:excess]
    return excess


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; ``SIG40`` for a signal Python has no name for (real-time ones)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


class Terminals:
    """Creates, watches and stops the agent's commands (see module doc).

    ``on_change(terminal)`` is called whenever output arrives or the command exits, so
    the transcript can show live output.
    """

    def __init__(
        self, root: Path, on_change: Callable[[Terminal], None] | None = None, sandbox: Sandbox | None = None
    ) -> None:
        self.root = root
        self.sandbox = sandbox  # --sandbox: every command runs confined, with no network (host/sandbox_run.py)
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
        fds: tuple[int, ...] = ()
        if self.sandbox is not None:
            argv, env, fds = self.sandbox.command(argv, env, cwd)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                pass_fds=fds,
            )
        finally:
            for fd in fds:
                os.close(fd)
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
        try:
            while data := await terminal.process.stdout.read(READ_CHUNK):
                terminal.append(data)
                self.on_change(terminal)
            returncode = await terminal.process.wait()
            if returncode < 0:
                terminal.signal = signal_name(-returncode)
            else:
                terminal.exit_code = returncode
        finally:
            # Whatever happened, a waiting terminal/wait_for_exit must not hang the turn.
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

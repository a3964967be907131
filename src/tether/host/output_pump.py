"""OutputPump: a command's output into the session as deltas, coalesced in time.

Terminals calls ``changed(terminal)`` for every chunk a command prints and once when it
exits; the pump hands the session at most one ``TerminalOutput`` event per command per
``REFRESH`` seconds (what arrived since the last, bounded by the terminal's own limit),
and a ``TerminalExited`` once the command is done and its last output is in. A command
that prints without pause therefore costs screens a bounded rate, never the whole
output again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tether.host.core import events as ev
from tether.host.terminals import Terminal

REFRESH = 0.1  # seconds between output deltas of one command


class OutputPump:
    """See module doc; ``handle`` is the session's one door."""

    def __init__(self, handle: Callable[[ev.Event], None]) -> None:
        self.handle = handle
        self._scheduled: set[str] = set()

    def changed(self, terminal: Terminal) -> None:
        if terminal.done.is_set():
            self._scheduled.discard(terminal.id)
            self._flush(terminal)
            code = terminal.exit_code if terminal.signal is None and terminal.exit_code is not None else -1
            self.handle(ev.TerminalExited(terminal.id, code))
        elif terminal.id not in self._scheduled:
            self._scheduled.add(terminal.id)
            asyncio.get_running_loop().call_later(REFRESH, self._when_due, terminal)

    def _when_due(self, terminal: Terminal) -> None:
        if terminal.id in self._scheduled:
            self._scheduled.discard(terminal.id)
            self._flush(terminal)

    def _flush(self, terminal: Terminal) -> None:
        text = terminal.take_new()
        if text:
            self.handle(ev.TerminalOutput(terminal.id, text))
